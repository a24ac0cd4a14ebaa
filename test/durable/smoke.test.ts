import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';

const hello = df.app.activity('smokeHello', { handler: (name: string) => `Hello ${name}` });
df.app.orchestration('smokeSequence', function* (context) {
  const out: string[] = [];
  out.push(yield hello('Tokyo'));
  out.push(yield context.df.callActivity('smokeHello', 'Seattle'));
  return out;
});

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

it('runs a sequence', async () => {
  const id = await hub.client.startNew('smokeSequence');
  const status = await hub.status(id, { showHistory: true, showHistoryOutput: true });
  console.log(JSON.stringify(status, null, 1));
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual(['Hello Tokyo', 'Hello Seattle']);
});
