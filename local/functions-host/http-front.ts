/**
 * The host's HTTP front end, in a thread of its own (started by http-host.ts): it accepts
 * connections, reads requests and writes answers, and hands each request to the host's main
 * thread as one message, as the Functions host's web server hands requests to the language worker
 * on Azure. The app's event loop then never accepts a connection: libuv accepts one connection
 * per turn of a loop, so a busy app loop took a second or more to take in a burst of 64 new
 * connections. The durable engine's paths are passed straight through to the engine's thread.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import type { FromHttpFront, HttpFrontSettings, ToHttpFront } from './http-front-protocol';

const port = parentPort!;
const settings = workerData as HttpFrontSettings;
const post = (message: FromHttpFront): void => port.postMessage(message);

const pending = new Map<number, ServerResponse>();
let nextId = 1;
let stopping = false;
let passThrough: { port: number; prefixes: string[] } | undefined;
const engineAgent = new Agent({ keepAlive: true });

/** The engine's port when the path is its own (each prefix ends in a slash; the path without it is the engine's too). */
function enginePortFor(pathname: string): number | undefined {
  if (!passThrough) return undefined;
  const own = passThrough.prefixes.some((p) => pathname.startsWith(p) || (pathname.length === p.length - 1 && p.startsWith(pathname)));
  return own ? passThrough.port : undefined;
}

function toEngine(req: IncomingMessage, res: ServerResponse, enginePort: number): void {
  const upstream = httpRequest(
    { host: '127.0.0.1', port: enginePort, method: req.method, path: req.url, headers: req.headers, agent: engineAgent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`durable engine unreachable: ${err.message}`);
    else res.destroy(err);
  });
  req.on('error', () => upstream.destroy());
  req.pipe(upstream);
}

const server = createServer({ keepAlive: true }, (req, res) => {
  const url = req.url ?? '/';
  if (stopping) res.setHeader('connection', 'close');
  const q = url.indexOf('?');
  const enginePort = enginePortFor(q >= 0 ? url.slice(0, q) : url);
  if (enginePort !== undefined) {
    toEngine(req, res, enginePort);
    return;
  }
  const chunks: Buffer[] = [];
  // A client that goes away while sending its body: there is no one to answer.
  req.on('error', () => res.destroy());
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const id = nextId++;
    pending.set(id, res);
    res.on('close', () => pending.delete(id));
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    post({ type: 'request', id, method: req.method ?? 'GET', url, rawHeaders: req.rawHeaders, body });
  });
});
server.keepAliveTimeout = 65_000;
// Node hands CONNECT to this event and, with no listener, drops the connection unanswered; no
// function can take CONNECT (the library's fetch Request refuses it), so it is the host's 404.
// The socket comes without the server's error and timeout handling, and outside the connections
// the server closes: a reset would be an uncaught error, and a client that never closes its side
// would hold the host's stop. So: errors end it, a quiet one goes after a while, what the client
// sends is read and dropped, and it is destroyed once the answer is written.
server.on('connect', (_req, duplex) => {
  const socket = duplex as Socket;
  socket.on('error', () => socket.destroy());
  socket.setTimeout(5_000, () => socket.destroy());
  socket.resume();
  socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n', () => socket.destroy());
});

let listening = false;
server.on('error', (err: NodeJS.ErrnoException) => {
  // After the start (a failed accept, say) the server keeps listening: say so, do not fail the host.
  if (listening) post({ type: 'error', message: err.message });
  else post({ type: 'listenFailed', code: err.code, message: err.message });
});
server.listen(settings.port, '127.0.0.1', () => {
  listening = true;
  post({ type: 'listening', port: (server.address() as AddressInfo).port });
});

port.on('message', (message: ToHttpFront) => {
  switch (message.type) {
    case 'reply': {
      const res = pending.get(message.id);
      if (!res) break;
      pending.delete(message.id);
      if (res.headersSent) {
        res.end();
        break;
      }
      res.writeHead(message.status, message.headers);
      res.end(message.body);
      break;
    }
    case 'passThrough':
      passThrough = { port: message.port, prefixes: message.prefixes };
      break;
    case 'close':
      stopping = true;
      server.close(() => {
        engineAgent.destroy();
        post({ type: 'closed' });
      });
      server.closeIdleConnections();
      break;
    case 'closeAll':
      server.closeAllConnections();
      break;
  }
});
