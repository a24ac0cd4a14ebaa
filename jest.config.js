/** One jest run for every suite; ts-jest compiles tests on the fly (isolatedModules keeps it quick). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.test.json' }],
  },
  testTimeout: 60000,
  maxWorkers: 2,
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
};
