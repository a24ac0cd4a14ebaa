/**
 * The local Functions host, for use in-process (tests, tools). The command line is cli.ts.
 *
 *   const host = await FunctionsHost.start({ appDir, port: 0 });
 *   // host.baseUrl, host.functions ... then
 *   await host.stop();
 *
 * One host per process: `@azure/functions-core` is process-wide, as in the Functions worker.
 */
export { FunctionsHost, type FunctionsHostOptions } from './host';
export { FunctionsCore, type RegisteredFunction, CORE_MODULE_NAME } from './core-module';
export { FunctionInvoker, HostConfigurationError, type InvocationRequest } from './invoker';
export { DurableFunctionInvoker } from './durable-bridge';
export { RouteTable, RouteTemplate, RouteTemplateError } from './http-routes';
export { CronSchedule, CronExpressionError } from './ncrontab';
