/**
 * The local Cosmos DB: @vercel/cosmosdb-server over TLS with a certificate we generate, kept alive
 * between requests, with the database and containers of src/topology.ts already created.
 *
 * Clients trust the stand-in by its certificate file (an https agent with `ca`), never by turning
 * TLS checking off.
 */
import { CosmosClient } from '@azure/cosmos';
import { createHttpsServer } from '@vercel/cosmosdb-server';
import { existsSync } from 'node:fs';
import { Agent } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { cosmosTopology, type CosmosTopology } from '../../src/topology';
import { COSMOS_EMULATOR_KEY, DEFAULT_COSMOS_PORT } from './account';
export { setThrottle, throttleState, THROTTLE_CONTROL_PATH, type ThrottleSettings, type ThrottleState } from './throttle';
import { ensureCertificate } from './certificate';
import { installConditionalPatch } from './conditional-patch';
import { installContinuationCheck } from './continuation';
import { installItemSizeLimit } from './item-size';
import { installQueryEngine } from './query-engine';
import { installThrottle } from './throttle';

export {
  COSMOS_CA_LINE_PREFIX,
  COSMOS_EMULATOR_KEY,
  COSMOS_READY_LINE_PREFIX,
  DEFAULT_COSMOS_PORT,
} from './account';

export interface CosmosEmulatorOptions {
  /** 0 picks a free port. Default 8081, the Cosmos DB emulator's port. */
  port?: number;
  host?: '127.0.0.1';
  /** Where cert.pem and key.pem live. Default `<repo>/.data/cosmos`. */
  certDir?: string;
  topology?: CosmosTopology;
}

export interface CosmosEmulator {
  port: number;
  /** `https://127.0.0.1:<port>/` */
  endpoint: string;
  key: string;
  /** PEM file a client passes as `ca` to trust this stand-in. */
  caCertificateFile: string;
  stop(): Promise<void>;
}

/** The port is held by another process; `port` says which, so the message can say how to change it. */
export class CosmosPortInUseError extends Error {
  constructor(readonly port: number, readonly host: string) {
    super(`port ${port} on ${host} is already in use`);
    this.name = 'CosmosPortInUseError';
  }
}

/** Idle keep-alive sockets live longer than any client pool's idle time, so a reused socket is not reset under it. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;

export async function startCosmosEmulator(options: CosmosEmulatorOptions = {}): Promise<CosmosEmulator> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? DEFAULT_COSMOS_PORT;
  const certDir = options.certDir ?? join(repositoryRoot(), '.data', 'cosmos');
  const topology = options.topology ?? cosmosTopology;

  installQueryEngine();
  installConditionalPatch();
  installContinuationCheck();
  installItemSizeLimit();
  installThrottle();
  const certificate = await ensureCertificate(certDir);
  const server = createHttpsServer({
    cert: certificate.cert,
    key: certificate.key,
    minVersion: 'TLSv1.2',
    // Passed through to the request handler: without it every answer carries `Connection: close`
    // and each request pays a new TLS handshake.
    keepAlive: true,
  } as Parameters<typeof createHttpsServer>[0] & { keepAlive: boolean });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await listen(server, requestedPort, host);
  const port = (server.address() as AddressInfo).port;
  const endpoint = `https://${host}:${port}/`;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Keep-alive sockets would hold close() open until they idle out.
      for (const socket of sockets) socket.destroy();
    });
    return stopped;
  };

  try {
    await bootstrap(endpoint, certificate.cert, topology);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, endpoint, key: COSMOS_EMULATOR_KEY, caCertificateFile: certificate.certFile, stop };
}

/** Creates the database and every container with its partition key, as infra/ does on Azure. */
async function bootstrap(endpoint: string, ca: string, topology: CosmosTopology): Promise<void> {
  const agent = new Agent({ ca, keepAlive: true });
  const client = new CosmosClient({ endpoint, key: COSMOS_EMULATOR_KEY, agent });
  try {
    const { database } = await client.databases.createIfNotExists({ id: topology.databaseName });
    for (const container of topology.containers) {
      await database.containers.createIfNotExists({
        id: container.name,
        partitionKey: { paths: [container.partitionKeyPath] },
      });
    }
  } finally {
    client.dispose();
    agent.destroy();
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(err.code === 'EADDRINUSE' ? new CosmosPortInUseError(port, host) : err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** The directory holding package.json, from either local/ (ts) or dist/local/ (js). */
function repositoryRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}
