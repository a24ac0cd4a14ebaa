/**
 * Tripwire: the local Functions host relies on private contracts of @azure/functions (the
 * worker <-> library API `@azure/functions-core`) and durable-functions (the out-of-proc protocol).
 * When an upgrade changes one of them, this file fails and names the package and the contract.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FunctionsCore } from '../../local/functions-host/core-module';
import type { CoreInvocationContext, RpcInvocationRequest } from '../../local/functions-host/core-types';

const mockCore = new FunctionsCore();
/** Every member of `@azure/functions-core` the library touched, so a new one cannot go unnoticed. */
const mockAccessed = new Set<string>();
// What the Node.js worker provides at run time; here the host's own implementation of it.
jest.mock(
  '@azure/functions-core',
  () =>
    new Proxy(mockCore.api, {
      get(target, key, receiver) {
        if (typeof key === 'string' && key !== '__esModule') mockAccessed.add(key);
        return Reflect.get(target, key, receiver) as unknown;
      },
    }),
  { virtual: true },
);

const ROOT = join(__dirname, '..', '..');
const PINS = { '@azure/functions': '4.16.5', 'durable-functions': '3.5.0' } as const;

function contract(pkg: keyof typeof PINS, what: string, check: () => void | Promise<void>): void {
  it(`${pkg}: ${what}`, async () => {
    try {
      await check();
    } catch (err) {
      throw new Error(
        `TRIPWIRE ${pkg}: "${what}" no longer holds. local/functions-host depends on it; ` +
          `re-check the host against the new ${pkg} before moving the pin.\n${(err as Error).message}`,
      );
    }
  });
}

function installedVersion(pkg: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}

/* eslint-disable @typescript-eslint/no-require-imports */
const functions = (): typeof import('@azure/functions') => require('@azure/functions');
const df = (): typeof import('durable-functions') => require('durable-functions');

function coreContext(name: string, request: RpcInvocationRequest): CoreInvocationContext {
  const fn = mockCore.functions.get(name);
  if (!fn) throw new Error(`function ${name} was not registered through @azure/functions-core`);
  return { invocationId: `inv-${name}`, request: { invocationId: `inv-${name}`, ...request }, metadata: fn.metadata, log: () => {} };
}

async function invoke(name: string, request: RpcInvocationRequest) {
  const model = await mockCore.programmingModel!.getInvocationModel(coreContext(name, request));
  const { context, inputs } = await model.getArguments();
  const result = await model.invokeFunction(context, inputs, mockCore.functions.get(name)!.callback);
  return { context, response: await model.getResponse(context, result) };
}

describe('pinned versions', () => {
  for (const [pkg, version] of Object.entries(PINS) as [keyof typeof PINS, string][]) {
    contract(pkg, `installed version is exactly ${version}`, () => {
      expect(installedVersion(pkg)).toBe(version);
      const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      expect(manifest.dependencies[pkg]).toBe(version);
    });
  }
  contract('durable-functions', 'uses the same single copy of @azure/functions', () => {
    expect(require.resolve('@azure/functions', { paths: [join(ROOT, 'node_modules', 'durable-functions')] })).toBe(
      require.resolve('@azure/functions'),
    );
  });
});

describe('@azure/functions <-> @azure/functions-core', () => {
  beforeAll(() => {
    const { app, output } = functions();
    app.http('tripHttp', { route: 'trip/{id}', methods: ['POST'], handler: async (req) => ({ status: 201, jsonBody: { id: req.params.id, body: await req.text() }, cookies: [{ name: 'c', value: 'v' }] }) });
    app.serviceBusQueue('tripBus', {
      queueName: 'q',
      connection: 'ServiceBusConnection',
      return: output.serviceBusQueue({ queueName: 'out', connection: 'ServiceBusConnection' }),
      handler: async (message, context) => ({ message, metadata: context.triggerMetadata }),
    });
    app.timer('tripTimer', { schedule: '*/5 * * * * *', handler: async (timer) => timer });
    const durable = df();
    durable.app.orchestration('tripOrchestrator', function* () {
      throw new Error('orchestrator failed');
    });
    durable.app.activity('tripActivity', { handler: async (input: unknown) => ({ echoed: input }) });
    app.http('tripClient', { extraInputs: [durable.input.durableClient()], handler: async () => ({ body: 'x' }) });
  });

  contract('@azure/functions', 'sets a programming model named @azure/functions with getInvocationModel and getCapabilities', async () => {
    const model = mockCore.programmingModel!;
    expect(model).toBeDefined();
    expect(model.name).toBe('@azure/functions');
    expect(model.version).toBe(PINS['@azure/functions']);
    expect(typeof model.getInvocationModel).toBe('function');
    expect(await model.getCapabilities!({})).toEqual({});
  });

  contract('@azure/functions', 'registers each function via registerFunction({name, bindings}, handler)', () => {
    const http = mockCore.functions.get('tripHttp')!;
    expect(http.trigger).toMatchObject({ type: 'httpTrigger', direction: 'in', route: 'trip/{id}', methods: ['POST'], authLevel: 'anonymous' });
    expect(http.metadata.bindings['$return']).toMatchObject({ type: 'http', direction: 'out' });
    const bus = mockCore.functions.get('tripBus')!;
    expect(bus.trigger).toMatchObject({ type: 'serviceBusTrigger', queueName: 'q', connection: 'ServiceBusConnection' });
    expect(bus.metadata.bindings['$return']).toMatchObject({ type: 'serviceBus', direction: 'out', queueName: 'out' });
    expect(mockCore.functions.get('tripTimer')!.trigger).toMatchObject({ type: 'timerTrigger', schedule: '*/5 * * * * *' });
  });

  contract('@azure/functions', 'uses only members of @azure/functions-core that the host provides', async () => {
    // Exercise the paths that reach the core module beyond registration: hooks and capabilities.
    const { app } = functions();
    app.hook.appStart(() => {}).dispose();
    await mockCore.programmingModel!.getCapabilities!({});
    expect([...mockAccessed].sort()).toEqual(expect.arrayContaining(['registerFunction', 'setProgrammingModel', 'registerHook']));
    const provided = new Set(Object.keys(mockCore.api));
    expect([...mockAccessed].filter((k) => !provided.has(k))).toEqual([]);
  });

  contract('@azure/functions', 'the test-mode warning text the host watches for is unchanged', () => {
    const bundle = readFileSync(join(ROOT, 'node_modules/@azure/functions/dist/azure-functions.js'), 'utf8');
    expect(bundle).toContain('Switching "@azure/functions" package to test mode');
    expect(bundle).toContain('__webpack_require__(/*! @azure/functions-core */ "@azure/functions-core")');
  });

  contract('@azure/functions', 'HTTP: RpcHttpData in, {http: {statusCode, headers, cookies, body.bytes}} out', async () => {
    const { response } = await invoke('tripHttp', {
      inputData: [
        {
          name: mockCore.functions.get('tripHttp')!.triggerName,
          data: { http: { method: 'POST', url: 'http://127.0.0.1/api/trip/7', headers: { 'content-type': 'text/plain' }, params: { id: '7' }, body: { bytes: Buffer.from('hi') } } },
        },
      ],
    });
    const http = response.returnValue!.http!;
    expect(http.statusCode).toBe('201');
    expect(http.headers!['content-type']).toMatch(/application\/json/);
    expect(http.cookies![0]).toMatchObject({ name: 'c', value: 'v' });
    expect(JSON.parse(Buffer.from(http.body!.bytes!).toString())).toEqual({ id: '7', body: 'hi' });
  });

  contract('@azure/functions', 'Service Bus: PascalCase trigger metadata is camel-cased (first letter, recursively); return value goes to $return', async () => {
    const { response } = await invoke('tripBus', {
      inputData: [{ name: mockCore.functions.get('tripBus')!.triggerName, data: { string: '{"a":1}' } }],
      triggerMetadata: { DeliveryCount: { int: 2 }, MessageId: { string: 'm-1' }, ApplicationProperties: { json: '{"OrderId":"o","order_id":"p"}' } },
    });
    const value = JSON.parse(response.returnValue!.json!) as { message: unknown; metadata: Record<string, unknown> };
    expect(value.message).toEqual({ a: 1 });
    expect(value.metadata).toMatchObject({ deliveryCount: 2, messageId: 'm-1', applicationProperties: { orderId: 'o', order_id: 'p' } });
  });

  contract('@azure/functions', 'timer input {IsPastDue, ScheduleStatus} arrives camel-cased', async () => {
    const { response } = await invoke('tripTimer', {
      inputData: [{ name: mockCore.functions.get('tripTimer')!.triggerName, data: { json: '{"IsPastDue":false,"ScheduleStatus":{"Next":"n"}}' } }],
    });
    expect(JSON.parse(response.returnValue!.json!)).toEqual({ isPastDue: false, scheduleStatus: { next: 'n' } });
  });

  contract('durable-functions', 'registers orchestrationTrigger / activityTrigger functions and durableClient inputs', () => {
    expect(mockCore.functions.get('tripOrchestrator')!.trigger.type).toBe('orchestrationTrigger');
    expect(mockCore.functions.get('tripActivity')!.trigger.type).toBe('activityTrigger');
    const types = Object.values(mockCore.functions.get('tripClient')!.metadata.bindings).map((b) => b.type);
    expect(types).toContain('durableClient');
  });

  contract('durable-functions', 'a failing orchestrator throws with the $OutOfProcData$ marker and the state after it', async () => {
    const payload = {
      history: [
        { EventType: 12, EventId: -1, IsPlayed: false, Timestamp: new Date().toISOString() },
        { EventType: 0, EventId: -1, IsPlayed: false, Timestamp: new Date().toISOString(), Name: 'tripOrchestrator', Input: 'null' },
      ],
      input: null,
      instanceId: 'i-1',
      isReplaying: false,
      parentInstanceId: null,
      upperSchemaVersion: 1,
      upperSchemaVersionNew: 3,
      longRunningTimerIntervalDuration: '3.00:00:00',
      maximumShortTimerDuration: '6.00:00:00',
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    let thrown: unknown;
    try {
      await invoke('tripOrchestrator', {
        inputData: [{ name: mockCore.functions.get('tripOrchestrator')!.triggerName, data: { json: JSON.stringify(payload) } }],
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(Error);
    const message = (thrown as Error).message;
    const marker = '\n\n$OutOfProcData$:';
    expect(message).toContain(marker);
    const state = JSON.parse(message.slice(message.indexOf(marker) + marker.length)) as { isDone: boolean; error: string };
    // The real error travels in the state, not in the text before the marker.
    expect(state.isDone).toBe(false);
    expect(state.error).toContain('orchestrator failed');
  });

  contract('durable-functions', 'an activity gets its JSON input and returns its value', async () => {
    const { response } = await invoke('tripActivity', {
      inputData: [{ name: mockCore.functions.get('tripActivity')!.triggerName, data: { json: '{"n":1}' } }],
    });
    expect(JSON.parse(response.returnValue!.json!)).toEqual({ echoed: { n: 1 } });
  });

  contract('durable-functions', 'the client binding is recognised by taskHubName/creationUrls/managementUrls and calls rpcBaseUrl', () => {
    const src = readFileSync(join(ROOT, 'node_modules/durable-functions/lib/src/durableClient/OrchestrationClientInputData.js'), 'utf8');
    expect(src).toMatch(/taskHubName !== undefined &&\s*typedInstance\.creationUrls !== undefined &&\s*typedInstance\.managementUrls !== undefined/);
    const client = readFileSync(join(ROOT, 'node_modules/durable-functions/lib/src/durableClient/DurableClient.js'), 'utf8');
    expect(client).toContain('this.clientData.rpcBaseUrl');
  });
});
