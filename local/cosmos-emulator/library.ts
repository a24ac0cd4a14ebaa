/**
 * The @vercel/cosmosdb-server modules the stand-in's patches reach into (its handlers, routes and
 * request reader), loaded from where the library itself resolves them.
 */
import { createRequire } from 'node:module';

/** `require` as the library's own code sees it. */
export const libraryRequire = createRequire(require.resolve('@vercel/cosmosdb-server'));

/** The library's request body reader (`raw-body`), which its handlers use. */
export const readRawBody = libraryRequire('raw-body') as (request: unknown) => Promise<Buffer>;
