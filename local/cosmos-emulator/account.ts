/**
 * What a client needs to know about the stand-in without loading it: its default port, key and the
 * lines its CLI prints. Kept apart so `npm start` does not load the server and SDK just to read these.
 */
export const DEFAULT_COSMOS_PORT = 8081;
/** What the CLI prints once bootstrapped, followed by the endpoint; `npm start` waits for it. */
export const COSMOS_READY_LINE_PREFIX = 'Cosmos DB stand-in listening on ';
/** Printed just before the ready line, followed by the certificate file clients must trust. */
export const COSMOS_CA_LINE_PREFIX = 'Cosmos DB stand-in CA certificate: ';

/**
 * The well-known Cosmos DB emulator key. The stand-in accepts any key; using the emulator's keeps
 * local settings identical to what the official emulator expects. It is public, not a secret.
 */
export const COSMOS_EMULATOR_KEY =
  'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==';

