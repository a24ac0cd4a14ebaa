/**
 * A Cosmos DB stand-in for the tests of one describe block: started on a free port with its own
 * certificate before them, with an SDK client that trusts it; stopped and its certificate removed after.
 */
import { CosmosClient, type Container } from '@azure/cosmos';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, type AgentOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';
import { cosmosTopology } from '../../src/topology';

export interface EmulatorWithClient {
  readonly certDir: string;
  readonly emulator: CosmosEmulator;
  /** A container of the app's database, through the client. */
  container(name: string): Container;
}

/** Call inside a describe block; `agentOptions` add to the keep-alive agent that trusts the stand-in. */
export function emulatorWithClient(certDirPrefix: string, agentOptions: Omit<AgentOptions, 'ca'> = {}): EmulatorWithClient {
  let certDir: string;
  let emulator: CosmosEmulator;
  let agent: Agent;
  let client: CosmosClient;

  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), certDirPrefix));
    emulator = await startCosmosEmulator({ port: 0, certDir });
    agent = new Agent({ ca: readFileSync(emulator.caCertificateFile), keepAlive: true, ...agentOptions });
    client = new CosmosClient({ endpoint: emulator.endpoint, key: emulator.key, agent });
  });

  afterAll(async () => {
    client?.dispose();
    agent?.destroy();
    await emulator?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  return {
    get certDir() {
      return certDir;
    },
    get emulator() {
      return emulator;
    },
    container: (name) => client.database(cosmosTopology.databaseName).container(name),
  };
}
