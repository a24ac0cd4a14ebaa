/** `npm run servicebus-emulator`: runs the emulator until SIGINT/SIGTERM. */
import { stopWhenLauncherGone } from '../launcher';
import { DEFAULT_KEY, DEFAULT_KEY_NAME, DEFAULT_PORT, startServiceBusEmulator } from './index';

async function main(): Promise<void> {
  const port = process.env.SERVICEBUS_EMULATOR_PORT ? Number(process.env.SERVICEBUS_EMULATOR_PORT) : DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`SERVICEBUS_EMULATOR_PORT is not a port number: ${process.env.SERVICEBUS_EMULATOR_PORT}`);
    process.exit(1);
  }
  let emulator;
  try {
    emulator = await startServiceBusEmulator({
      port,
      keyName: process.env.SERVICEBUS_EMULATOR_KEY_NAME || DEFAULT_KEY_NAME,
      key: process.env.SERVICEBUS_EMULATOR_KEY || DEFAULT_KEY,
      ...(process.env.SERVICEBUS_EMULATOR_LOCK_DURATION ? { lockDuration: process.env.SERVICEBUS_EMULATOR_LOCK_DURATION } : {}),
      log: (msg) => console.error(`[servicebus-emulator] ${msg}`),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') console.error(`Service Bus emulator: port ${port} is already in use (set SERVICEBUS_EMULATOR_PORT to use another).`);
    else console.error(`Service Bus emulator failed to start on port ${port}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  console.log(`Service Bus emulator listening on sb://127.0.0.1:${emulator.port}`);
  const stop = () => {
    emulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  stopWhenLauncherGone((why) => {
    console.error(`[servicebus-emulator] ${why}: stopping`);
    stop();
  });
}

void main();
