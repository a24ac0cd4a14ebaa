// Shared jest setup: nothing global yet beyond a clear failure for unhandled rejections.
process.on('unhandledRejection', (reason) => {
  // eslint-disable-next-line no-console
  console.error('unhandled rejection in test process', reason);
});
