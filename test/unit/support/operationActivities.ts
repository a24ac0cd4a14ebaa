/**
 * The monitor's and the compensation's activities, run for real in unit tests: the durable SDK only
 * hands their handlers over here, and `appDependencies()` answers with the stores as the operation
 * that called it sees them (each operation has its own view, which dies with its host: run the
 * operation inside `mockOperation.run(stores, ...)`). Refunds fail while `mockRefunds.failuresLeft`
 * is above 0, and a backlog check finds no message waiting. Import this module before anything
 * that loads the activities.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { InvocationContext } from '@azure/functions';
import type { OrderSagaDependencies } from '../../../src/services/dependencies';

type Handler = (input: unknown, context: InvocationContext) => Promise<unknown>;
export const mockActivities = new Map<string, Handler>();
export const mockOperation = new AsyncLocalStorage<OrderSagaDependencies>();
export const mockRefunds = { failuresLeft: 0 };

jest.mock('durable-functions', () => ({
  app: { activity: (name: string, options: { handler: Handler }) => mockActivities.set(name, options.handler) },
}));
jest.mock('../../../src/services/dependencies', () => ({
  ...jest.requireActual('../../../src/services/dependencies'),
  appDependencies: () => {
    const deps = mockOperation.getStore();
    if (!deps) throw new Error('appDependencies() called outside an operation');
    return deps;
  },
}));
jest.mock('../../../src/support/faults', () => ({
  ...jest.requireActual('../../../src/support/faults'),
  appCompensationFaults: () => ({ refundFails: async () => mockRefunds.failuresLeft-- > 0, setRefundFails: async () => undefined }),
}));
jest.mock('../../../src/azure/subscriptionBacklog', () => ({ oldestWaitingMessage: async () => undefined }));
// Required after the mocks' holders exist: the SDK's mock registers into them on load.
/* eslint-disable @typescript-eslint/no-require-imports */
require('../../../activities/compensationActivities');
require('../../../activities/monitorActivities');
/* eslint-enable @typescript-eslint/no-require-imports */

export const silentSink = { info: () => undefined, warn: () => undefined, error: () => undefined };
export const activityContext = (name: string) => ({ functionName: name, ...silentSink, log: () => undefined }) as unknown as InvocationContext;
