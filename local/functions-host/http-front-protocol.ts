/** Messages between the host's main thread (http-host.ts) and its HTTP front end thread (http-front.ts). */

export interface HttpFrontSettings {
  /** 0 = any free port. */
  port: number;
}

/** A request as the front end read it. */
export interface FrontRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Uint8Array;
}

/** The answer the front end writes. */
export interface FrontResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body?: Uint8Array;
}

export type ToHttpFront =
  | ({ type: 'reply'; id: number } & FrontResponse)
  /** The durable engine's paths and the port of its thread, passed through without the main thread. */
  | { type: 'passThrough'; port: number; prefixes: string[] }
  /**
   * Stop accepting connections and close the idle ones; answers carry `connection: close` from now
   * on. `closed` once the last connection is gone.
   */
  | { type: 'close' }
  | { type: 'closeAll' };

export type FromHttpFront =
  | { type: 'listening'; port: number }
  | { type: 'listenFailed'; code?: string; message: string }
  /** The server reported an error after it started listening. */
  | { type: 'error'; message: string }
  | ({ type: 'request'; id: number } & FrontRequest)
  | { type: 'closed' };
