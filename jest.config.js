/** One jest run for every suite; ts-jest compiles tests on the fly (isolatedModules in tsconfig.test.json keeps it quick: no type-checking per file). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
  },
  testTimeout: 60000,
  maxWorkers: 2,
  // No test leaves a handle open, yet a worker that has run some fifty files ends the run holding 0.7-0.8 GB of heap
  // (garbage V8 has not collected yet: a full collection between files brings it back to 60-160 MB). Unmapping that
  // at the worker's natural exit takes longer on a busy two-core machine than the 500 ms jest waits before it
  // force-exits the worker and reports a leak. A worker past 200 MB of heap after a file is replaced by a fresh one,
  // so the last ones end small and exit in time.
  workerIdleMemoryLimit: '200MB',
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
};
