/**
 * The order monitor's world for orchestration tests: the Service Bus emulator and the Cosmos DB
 * stand-in in this process, the Functions host (the built app in dist/) as a child process whose
 * durable engine runs on a VIRTUAL clock. Durable timers (poll, requeue backoff, stuck thresholds,
 * compensation retries) fire only when the test moves time with `advance`; the consumers work in
 * real time, as they would. The host can be killed and started again on the same task hub.
 */
import type { CosmosClient } from '@azure/cosmos';
import { ServiceBusClient } from '@azure/service-bus';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { standInThrottle, type StandInThrottle } from '../../local/cosmos-emulator/throttle-client';
import { disposableSettings, emulatorSettings, startFunctionsHost } from '../../local/stack';
import { createCosmosClient } from '../../src/azure/clients';
import type { OrderDocument } from '../../src/domain/order';
import { buildOrderCreatedEvent, CLOUDEVENTS_CONTENT_TYPE, ORDER_CREATED, orderCreatedProperties } from '../../src/domain/orderCreatedEvent';
import { newOrder } from '../../src/domain/orderState';
import { cosmosTopology, ORDERS_TOPIC, TARGET_PROPERTY, type ServiceName } from '../../src/topology';
import { callHost, startEmulatorsInProcess } from '../e2e/system';

export type OrderView = OrderDocument & { monitor: { runtimeStatus: string; customStatus: any } | null };

export interface MonitorWorld {
  baseUrl: string;
  cosmos: CosmosClient;
  serviceBus: ServiceBusClient;
  request<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T }>;
  order(id: string): Promise<OrderView>;
  /** Moves the engine's virtual clock forward (timers fire in order) and waits until it is idle. */
  advance(ms: number): Promise<void>;
  /** Virtual time of the engine. */
  clock(): Promise<Date>;
  /** Flips the fault switches through the support API. */
  setFaults(faults: { billingFails?: boolean; refundFails?: boolean }): Promise<void>;
  /** Switches the Cosmos DB stand-in's throttling fault (local/cosmos-emulator/throttle.ts). */
  throttle(settings: { share?: number; retryAfterMs?: number; containers?: string[] | null }): Promise<StandInThrottle>;
  /** How many events the instance's history holds now. */
  historyLength(id: string): Promise<number>;
  /**
   * Lets the system run until `done(order)`: polls the order in real time and, when nothing
   * changes, moves virtual time by `stepMs`. Returns the order and the virtual time spent.
   */
  runUntil(id: string, done: (o: OrderView) => boolean, options?: { stepMs?: number; maxVirtualMs?: number; realTimeoutMs?: number }): Promise<{ order: OrderView; virtualMs: number }>;
  /** Kills the host (SIGKILL: no graceful shutdown) and starts it again on the same task hub. */
  killAndRestartHost(between?: () => Promise<void>): Promise<void>;
  hostOutput(): string;
  stop(): Promise<void>;
}

export async function startMonitorWorld(env: Record<string, string> = {}): Promise<MonitorWorld> {
  const scratch = mkdtempSync(join(tmpdir(), 'order-monitor-'));
  const emulators = await startEmulatorsInProcess(join(scratch, 'cosmos'));
  const host = await startFunctionsHost({
    settings: {
      ...emulatorSettings(emulators),
      ...disposableSettings(join(scratch, 'durable')),
      DURABLE_VIRTUAL_CLOCK: 'true',
      SUPPORT_DEV_PRINCIPAL: 'support@localhost',
      // The sweeper runs on real time: often, so a test can watch it restart a monitor. It only
      // touches active orders whose monitor is missing, failed or terminated.
      MONITOR_SWEEP_SCHEDULE: '*/2 * * * * *',
      MONITOR_SWEEP_GRACE_SECONDS: '1',
      // Few turns per execution, so every scenario also crosses continue-as-new.
      MONITOR_ITERATIONS_PER_EXECUTION: '4',
      ...env,
    },
    // A restarted host takes a free port again; `baseUrl` follows it.
    keepPort: false,
    timeoutMs: 60_000,
    echo: process.env.ECHO_HOST === '1',
  });
  const { client: cosmos, agent } = createCosmosClient(emulators.cosmos);
  const serviceBus = new ServiceBusClient(emulators.serviceBusConnectionString);

  const request = <T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    callHost<T>(host.baseUrl, method, path, body, headers);

  const order = async (id: string): Promise<OrderView> => {
    const res = await request<OrderView>('GET', `/api/orders/${id}`);
    if (res.status !== 200) throw new Error(`GET order ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const advance = async (ms: number) => {
    const res = await request('POST', `/admin/durable/advance?ms=${ms}`);
    if (res.status !== 200) throw new Error(`advance: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const clock = async () => new Date((await request<{ now: string }>('GET', '/admin/durable/clock')).body.now);
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const setFaults = async (faults: { billingFails?: boolean; refundFails?: boolean }) => {
    const res = await request('POST', '/api/support/faults', faults);
    if (res.status !== 200) throw new Error(`faults: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const historyLength = async (id: string) => {
    const res = await request<{ historyEvents?: unknown[] }>('GET', `/runtime/webhooks/durabletask/instances/${id}?showHistory=true`);
    return (res.body.historyEvents ?? []).length;
  };

  const world: MonitorWorld = {
    get baseUrl() {
      return host.baseUrl;
    },
    cosmos,
    serviceBus,
    request,
    order,
    advance,
    clock,
    setFaults,
    throttle: (settings) => standInThrottle(emulators.cosmos, settings),
    historyLength,
    async runUntil(id, done, options = {}) {
      const stepMs = options.stepMs ?? 1_000;
      const maxVirtualMs = options.maxVirtualMs ?? 10 * 60_000;
      const realDeadline = Date.now() + (options.realTimeoutMs ?? 60_000);
      const started = (await clock()).getTime();
      let last = '';
      let quiet = 0;
      for (;;) {
        await request('POST', '/admin/durable/idle');
        const current = await order(id);
        if (done(current)) return { order: current, virtualMs: (await clock()).getTime() - started };
        const fingerprint = JSON.stringify([current.state, current.status, current.timeline.length, current.monitor?.customStatus]);
        // Give the real-time consumers a moment whenever something just changed; move time otherwise.
        quiet = fingerprint === last ? quiet + 1 : 0;
        last = fingerprint;
        const elapsed = (await clock()).getTime() - started;
        if (elapsed > maxVirtualMs || Date.now() > realDeadline) {
          throw new Error(`order ${id} did not get there (virtual ${elapsed} ms): ${JSON.stringify(current, null, 1)}`);
        }
        if (quiet >= 2) await advance(stepMs);
        else await pause(60);
      }
    },
    async killAndRestartHost(between) {
      await host.kill();
      if (between) await between();
      await host.restart();
    },
    hostOutput: () => host.current().output(),
    async stop() {
      await serviceBus.close().catch(() => undefined);
      cosmos.dispose();
      agent?.destroy();
      await host.stop().catch(() => undefined);
      await emulators.stop().catch(() => undefined);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
  return world;
}

export const ordersContainer = (cosmos: CosmosClient) => cosmos.database(cosmosTopology.databaseName).container('orders');

/**
 * An order whose OrderCreated reaches only the consumers the test sends it to (a lost message, or
 * a chosen order of events): written like the intake writes it, its monitor started like the
 * intake starts it; `deliver` sends the event targeted at some consumers.
 */
export async function writeOrderWithMonitor(world: MonitorWorld, items: { sku: string; quantity: number }[], customerId = 'monitor-test') {
  const id = `order-${Math.random().toString(16).slice(2, 10)}`;
  const priced = await Promise.all(items.map(async (i) => ({ ...i, unitPrice: (await world.request('GET', `/api/inventory/${i.sku}`)).body.price as number })));
  const order = newOrder({
    id,
    eventId: `${id}-event`,
    correlationId: `${id}-corr`,
    customerId,
    items: priced,
    total: Math.round(priced.reduce((t, i) => t + i.quantity * i.unitPrice, 0) * 100) / 100,
    now: new Date().toISOString(),
  });
  await ordersContainer(world.cosmos).items.create({ ...order, published: true });
  const started = await world.request('POST', `/runtime/webhooks/durabletask/orchestrators/orderMonitor/${id}`, { orderId: id, correlationId: order.correlationId });
  if (started.status >= 300) throw new Error(`monitor start: ${started.status} ${JSON.stringify(started.body)}`);
  const deliver = async (...targets: ServiceName[]) => {
    const sender = world.serviceBus.createSender(ORDERS_TOPIC);
    for (const target of targets) {
      await sender.sendMessages({
        messageId: `${order.eventId}:${target}:test`,
        body: buildOrderCreatedEvent(order),
        contentType: CLOUDEVENTS_CONTENT_TYPE,
        correlationId: order.correlationId,
        subject: ORDER_CREATED,
        applicationProperties: { ...orderCreatedProperties(order), [TARGET_PROPERTY]: target },
      });
    }
    await sender.close();
  };
  return { id, order, deliver };
}
