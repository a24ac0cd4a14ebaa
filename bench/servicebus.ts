/**
 * Service Bus emulator throughput with the real SDK: `node dist/bench/servicebus.js` (build first).
 * The emulator runs in its own process (as it does locally); senders and receivers share this one.
 * Prints messages/s for send -> receive -> complete with 1 and 16 concurrent receivers on one
 * subscription, and for fan-out to the three subscriptions of `orders`.
 * Options: BENCH_SB_MESSAGES (per scenario, default 20000), BENCH_SB_BATCH (send batch size,
 * default 100), BENCH_SB_IN_PROCESS=1 (run the emulator in this process instead),
 * BENCH_CPU_PROFILE=<dir> (write a V8 CPU profile of the emulator process there).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ServiceBusClient, type ServiceBusReceiver } from '@azure/service-bus';
import { startServiceBusEmulator } from '../local/servicebus-emulator';
import { ORDERS_TOPIC, SUBSCRIPTIONS } from '../src/topology';

const total = Number(process.env['BENCH_SB_MESSAGES'] ?? 20000);
const batchSize = Number(process.env['BENCH_SB_BATCH'] ?? 100);
const inProcess = process.env['BENCH_SB_IN_PROCESS'] === '1';
const profileDir = process.env['BENCH_CPU_PROFILE'];
const SENDERS_IN_FLIGHT = 4;
const CLIENTS = 4;

async function startEmulator(): Promise<{ connectionString: string; stop(): Promise<void> }> {
  if (inProcess) return startServiceBusEmulator({ port: 0 });
  const cli = join(__dirname, '..', 'local', 'servicebus-emulator', 'cli.js');
  const args = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, cli] : [cli];
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { ...process.env, SERVICEBUS_EMULATOR_PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on sb:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  return {
    connectionString: `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

let runId = 0;

/** Sends `n` messages in batches, a few batches in flight. */
async function sendAll(client: ServiceBusClient, n: number, target: string | undefined): Promise<void> {
  const sender = client.createSender(ORDERS_TOPIC);
  const run = ++runId;
  let next = 0;
  const body = { orderId: 'o', customerId: 'c', items: [{ sku: 'sku-1', quantity: 1 }], total: 10 };
  await Promise.all(
    [...Array(SENDERS_IN_FLIGHT)].map(async () => {
      while (next < n) {
        const batch = await sender.createMessageBatch();
        while (next < n) {
          const i = next;
          const ok = batch.tryAddMessage({
            body,
            messageId: `bench-${process.pid}-${run}-${i}`,
            applicationProperties: target ? { event_type: 'OrderCreated', target } : { event_type: 'OrderCreated' },
          });
          if (!ok) break;
          next++;
          if (batch.count >= batchSize) break;
        }
        await sender.sendMessages(batch);
      }
    }),
  );
  await sender.close();
}

/** Receives and completes until `expected` messages are done across all receivers. */
async function drain(receivers: ServiceBusReceiver[], expected: number): Promise<void> {
  let done = 0;
  await Promise.all(
    receivers.map(async (r) => {
      while (done < expected) {
        const got = await r.receiveMessages(100, { maxWaitTimeInMs: 200 });
        await Promise.all(got.map((m) => r.completeMessage(m)));
        done += got.length;
      }
    }),
  );
}

async function scenario(
  clients: ServiceBusClient[],
  name: string,
  opts: { receiversPerSub: number; subscriptions: string[]; target?: string },
): Promise<void> {
  const receivers: ServiceBusReceiver[] = [];
  for (const sub of opts.subscriptions) {
    for (let i = 0; i < opts.receiversPerSub; i++) {
      receivers.push(clients[receivers.length % clients.length].createReceiver(ORDERS_TOPIC, sub, { maxAutoLockRenewalDurationInMs: 0 }));
    }
  }
  // Attach (and put-token) before timing.
  await Promise.all(receivers.map((r) => r.peekMessages(1)));
  const deliveries = total * opts.subscriptions.length;
  const t0 = performance.now();
  await Promise.all([sendAll(clients[0], total, opts.target), drain(receivers, deliveries)]);
  const s = (performance.now() - t0) / 1000;
  const perSub = opts.subscriptions.length > 1 ? `, ${Math.round(deliveries / s)} deliveries/s completed` : '';
  console.log(`${name.padEnd(44)} ${String(Math.round(total / s)).padStart(7)} messages/s (${total} messages in ${s.toFixed(2)} s${perSub})`);
  await Promise.all(receivers.map((r) => r.close()));
}

async function main(): Promise<void> {
  const emulator = await startEmulator();
  const clients = [...Array(CLIENTS)].map(() => new ServiceBusClient(emulator.connectionString));
  try {
    console.log(`Service Bus emulator (${inProcess ? 'in process' : 'own process'}): send batches of ${batchSize} -> receiveMessages(100) -> complete`);
    // Warm-up (JIT, connections) on a small run.
    await scenario(clients, 'warm-up', { receiversPerSub: 1, subscriptions: [SUBSCRIPTIONS.billing], target: 'billing' }).catch(() => undefined);
    await scenario(clients, '1 receiver, billing-sub', { receiversPerSub: 1, subscriptions: [SUBSCRIPTIONS.billing], target: 'billing' });
    await scenario(clients, '16 concurrent receivers, billing-sub', { receiversPerSub: 16, subscriptions: [SUBSCRIPTIONS.billing], target: 'billing' });
    await scenario(clients, 'fan-out to 3 subscriptions, 1 receiver each', {
      receiversPerSub: 1,
      subscriptions: [SUBSCRIPTIONS.inventory, SUBSCRIPTIONS.billing, SUBSCRIPTIONS.notification],
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await emulator.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
