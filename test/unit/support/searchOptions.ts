/**
 * fast-check's options for the property suites. A fixed seed by default, so every run of `npm test`
 * checks the same cases and a failure is a change's, not a draw's; a search is asked for:
 * `FC_RANDOM=1` draws a new seed (written to stderr, so a run that ends other than by a failing
 * property, such as an unhandled rejection, can be replayed too), `FC_RUNS` runs more cases,
 * `FC_SEED` with `FC_PATH` replays a failure fast-check reported.
 */
import type fc from 'fast-check';
import { randomInt } from 'node:crypto';

const FIXED_SEED = 20261129;

export function searchOptions(numRuns: number): fc.Parameters<unknown> {
  const env = process.env;
  const seed = env.FC_SEED !== undefined ? Number(env.FC_SEED) : env.FC_RANDOM ? drawnSeed() : FIXED_SEED;
  return {
    numRuns: Number(env.FC_RUNS ?? numRuns),
    seed,
    ...(env.FC_SEED !== undefined && env.FC_PATH ? { path: env.FC_PATH } : {}),
  };
}

function drawnSeed(): number {
  const seed = randomInt(2 ** 31);
  process.stderr.write(`fast-check seed ${seed} (FC_SEED=${seed} runs the same cases)\n`);
  return seed;
}
