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
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
};
