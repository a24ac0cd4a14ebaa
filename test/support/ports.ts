/** Free loopback ports for suites that start `npm start` itself, which takes its ports from the environment. */
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The variables that move each of `npm start`'s ports, each set to a port that is free now. */
export async function freeStartPorts(): Promise<Record<'FUNCTIONS_HTTP_PORT' | 'SERVICEBUS_EMULATOR_PORT' | 'COSMOS_EMULATOR_PORT', string>> {
  return {
    FUNCTIONS_HTTP_PORT: String(await freePort()),
    SERVICEBUS_EMULATOR_PORT: String(await freePort()),
    COSMOS_EMULATOR_PORT: String(await freePort()),
  };
}
