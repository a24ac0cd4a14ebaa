/**
 * Switches the stand-in's throttling fault (throttle.ts) from another process, over its own port
 * and certificate. Kept apart from the server so a client does not load it.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

/** Kept in step with THROTTLE_CONTROL_PATH in throttle.ts (which loads the server). */
const CONTROL_PATH = '/_emulator/throttle';

export interface StandInThrottle {
  share: number;
  retryAfterMs: number;
  containers: string[] | null;
  throttled: number;
  passed: number;
}

/** Sets (with `settings`) or reads the fault; resolves with the stand-in's state after the call. */
export function standInThrottle(
  cosmos: { endpoint: string; caCertificateFile: string },
  settings?: { share?: number; retryAfterMs?: number; containers?: string[] | null },
): Promise<StandInThrottle> {
  const body = settings === undefined ? undefined : JSON.stringify(settings);
  const url = new URL(CONTROL_PATH, cosmos.endpoint);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: body === undefined ? 'GET' : 'PUT',
        ca: readFileSync(cosmos.caCertificateFile),
        headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`${CONTROL_PATH} answered ${res.statusCode}: ${text}`));
          else resolve(JSON.parse(text) as StandInThrottle);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${CONTROL_PATH} did not answer within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
