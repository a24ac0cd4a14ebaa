/**
 * `npm run cosmos-emulator`: the Cosmos DB stand-in as its own process. Prints one ready line once
 * the topology is bootstrapped; `npm start` waits for exactly that line.
 */
// First: it notes the parent before the heavy imports below load (launcher.ts).
import { stopWhenLauncherGone } from '../launcher';
import {
  COSMOS_CA_LINE_PREFIX,
  COSMOS_READY_LINE_PREFIX,
  CosmosPortInUseError,
  DEFAULT_COSMOS_PORT,
  startCosmosEmulator,
} from './index';


function portFromEnvironment(): number {
  const raw = process.env.COSMOS_EMULATOR_PORT;
  if (raw === undefined || raw === '') return DEFAULT_COSMOS_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`COSMOS_EMULATOR_PORT must be a port number (0-65535), got "${raw}"`);
    process.exit(1);
  }
  return port;
}

async function main(): Promise<void> {
  const port = portFromEnvironment();
  let emulator;
  try {
    emulator = await startCosmosEmulator({ port });
  } catch (err) {
    if (err instanceof CosmosPortInUseError) {
      console.error(
        `Cosmos DB stand-in cannot start: port ${err.port} is already in use. ` +
          `Stop whatever holds it or set COSMOS_EMULATOR_PORT to another port.`,
      );
    } else {
      console.error(`Cosmos DB stand-in failed to start: ${(err as Error).message ?? String(err)}`);
    }
    process.exit(1);
  }
  // The certificate line comes first: whoever waits for the ready line has it by then.
  console.log(`${COSMOS_CA_LINE_PREFIX}${emulator.caCertificateFile}`);
  console.log(`${COSMOS_READY_LINE_PREFIX}${emulator.endpoint}`);

  const shutdown = () => {
    void emulator.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  stopWhenLauncherGone((why) => {
    console.error(`Cosmos DB stand-in: ${why}: stopping`);
    shutdown();
  });
}

void main();
