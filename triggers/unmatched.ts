/**
 * GET /api/anything-else and any method a route does not take: a problem+json 404 or 405 (with
 * `Allow`) instead of the Functions host's empty 404. The host tries routes in the order of their
 * functions' names, so this one's name must sort after every other HTTP function's.
 */
import { app } from '@azure/functions';
import { withApiHeaders } from '../src/http/apiHeaders';
import { handleUnmatched, UNMATCHED_ROUTE } from '../src/http/routes';

app.http('unmatched', {
  ...UNMATCHED_ROUTE,
  authLevel: 'anonymous',
  handler: withApiHeaders(async (request) => handleUnmatched(request)),
});
