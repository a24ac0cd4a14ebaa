/**
 * Tripwire: the engine speaks durable-functions' private wire contract with the extension (action
 * and history event numbers, the failure marker, replay schema). If an upgrade changes any of it,
 * this fails before orchestrations start misbehaving.
 */
import { ActionType } from '../../local/durable/actions';
import { HistoryEventType } from '../../local/durable/history';

/* eslint-disable @typescript-eslint/no-require-imports */
const sdkActionType = require('durable-functions/lib/src/actions/ActionType').ActionType as Record<string, number | string>;
const sdkHistoryEventType = require('durable-functions/lib/src/history/HistoryEventType').HistoryEventType as Record<string, number | string>;
const { ReplaySchema } = require('durable-functions/lib/src/orchestrations/ReplaySchema') as { ReplaySchema: Record<string, number> };
const { OrchestrationFailureError } = require('durable-functions/lib/src/error/OrchestrationFailureError') as {
  OrchestrationFailureError: new (error: unknown, state: unknown) => Error;
};
/* eslint-enable @typescript-eslint/no-require-imports */

const named = (e: Record<string, number | string>): Record<string, number> =>
  Object.fromEntries(Object.entries(e).filter(([, v]) => typeof v === 'number')) as Record<string, number>;

it('runs against durable-functions 3.5.0 exactly', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  expect(require('durable-functions/package.json').version).toBe('3.5.0');
});

it('uses the same action type numbers as the SDK', () => {
  expect(named(ActionType as unknown as Record<string, number | string>)).toEqual(named(sdkActionType));
});

it('uses the same history event type numbers as the SDK', () => {
  expect(named(HistoryEventType as unknown as Record<string, number | string>)).toEqual(named(sdkHistoryEventType));
});

it('finds the orchestration state after the $OutOfProcData$ marker of a failed episode', () => {
  const err = new OrchestrationFailureError(false, { isDone: false, actions: [[]], error: 'boom' });
  expect(err.message).toBe('false\n\n$OutOfProcData$:{"isDone":false,"actions":[[]],"error":"boom"}');
});

it('offers replay schema V4, the one the engine announces (upperSchemaVersionNew = 3)', () => {
  expect(ReplaySchema.V4).toBe(3);
});
