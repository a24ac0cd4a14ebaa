/** The benchmark's printed summary and target checks, from a result with known figures. */
import type { BenchResult } from '../../bench/report/result';
import { checkTargets, formatBenchSummary } from '../../bench/report/summary';

const latency = (p50: number, p99: number) => ({ count: 100, p50, p95: p99, p99, max: p99, mean: p50 });

function result(over: Partial<BenchResult> = {}): BenchResult {
  const partial: Omit<BenchResult, 'targets'> = {
    startedAt: '2026-11-27T00:00:00.000Z',
    finishedAt: '2026-11-27T00:01:00.000Z',
    machine: { cpus: 2, loadAverageAtStart: [0.1, 0.1, 0.1], node: 'v20', platform: 'linux' },
    settings: {},
    intake: [
      { label: 'concurrency 64', kind: 'closed', concurrency: 64, seconds: 5, requests: 1000, accepted: 1000, otherStatuses: {}, acceptedPerSecond: 200, latencyMs: latency(200, 900) },
      { label: 'open 100/s', kind: 'open', ratePerSecond: 100, seconds: 10, requests: 1000, accepted: 1000, otherStatuses: {}, acceptedPerSecond: 100, latencyMs: latency(20, 45) },
    ],
    endToEnd: {
      orders: 950,
      accepted: 950,
      completed: 950,
      otherStates: {},
      seconds: 10,
      completedPerSecond: 95,
      latencyMs: latency(5000, 6000),
      cpuMsPerOrder: { host: 15, serviceBusEmulator: 1.5, cosmosEmulator: 3.5, loadGenerator: 0.5, total: 20.5 },
    },
    memory: [],
    ...over,
  };
  return { ...partial, targets: checkTargets(partial) };
}

describe('bench summary', () => {
  it('prints the CPU one completed order costs each process, and the completions per second the cores allow', () => {
    const text = formatBenchSummary(result());
    expect(text).toContain(
      'CPU per completed order: host 15.0 ms, Service Bus emulator 1.5 ms, Cosmos stand-in 3.5 ms, load generator 0.5 ms = 20.5 ms: 2 cores complete at most 98 orders/s',
    );
  });

  it("prints how busy the host's main thread was in each intake phase and its share of an order's CPU", () => {
    const base = result();
    const [closed, open] = base.intake as [BenchResult['intake'][number], BenchResult['intake'][number]];
    const text = formatBenchSummary(
      result({
        intake: [closed, { ...open, hostMainThreadBusy: 0.784 }],
        endToEnd: { ...base.endToEnd!, hostMainThreadCpuMsPerOrder: 8.06 },
      }),
    );
    const lines = text.split('\n');
    // (No CPU steal figure in these phases: that column says so too.)
    expect(lines.find((l) => l.includes('open 100/s'))).toMatch(/45\.0 ms\s+78%\s+n\/a\s+-$/);
    // A phase measured without the figure says so rather than showing a number.
    expect(lines.find((l) => l.includes('concurrency 64'))).toMatch(/900\.0 ms\s+n\/a\s+n\/a\s+-$/);
    expect(text).toContain('CPU per completed order: host 15.0 ms (main thread 8.1 ms), Service Bus emulator 1.5 ms');
  });

  it('checks each target against its figure', () => {
    const byName = Object.fromEntries(result().targets.map((t) => [t.name, t.pass]));
    expect(byName).toEqual({
      'intake p99 at 100 orders/s': true,
      'accepted orders/s (best of the sweep)': false,
      'completed orders/s (end to end)': false,
      '202 path vs synchronous chain (p50)': null,
      'host RSS after 10,000 orders': null,
    });
  });

  it('names a phase during which the machine paused the load generator, and only that one', () => {
    const base = result();
    const [closed, open] = base.intake as [BenchResult['intake'][number], BenchResult['intake'][number]];
    const text = formatBenchSummary(
      result({
        intake: [
          { ...closed, machine: { longestPauseMs: 40, pausesOver100Ms: 0, stealMs: 0 } },
          { ...open, machine: { longestPauseMs: 968.4, pausesOver100Ms: 1, stealMs: 1210 } },
        ],
      }),
    );
    expect(text).toContain(
      'open 100/s: the load generator itself stood still for up to 968 ms (1 pause over 100 ms, CPU steal 1210 ms); requests in flight then waited for the machine',
    );
    expect(text).not.toContain('concurrency 64: the load generator');
    // Each phase's CPU steal is in its row, paused or not.
    const lines = text.split('\n');
    expect(lines.find((l) => l.startsWith('  open 100/s'))).toMatch(/45\.0 ms\s+n\/a\s+1210 ms\s+-$/);
    expect(lines.find((l) => l.startsWith('  concurrency 64'))).toMatch(/900\.0 ms\s+n\/a\s+0 ms\s+-$/);
  });

  it('prints a rate just under its target with a decimal, so a miss never reads as the target', () => {
    const base = result();
    const checks = checkTargets({ ...base, endToEnd: { ...base.endToEnd!, accepted: 1000, completed: 1000, completedPerSecond: 99.97 } });
    const completed = checks.find((c) => c.name.startsWith('completed orders/s'))!;
    expect(completed).toMatchObject({ measured: '99.9/s (1000/1000)', pass: false });
    const text = formatBenchSummary(result({ endToEnd: { ...base.endToEnd!, completedPerSecond: 99.97 } }));
    expect(text).toContain('= 99.9 completed/s;');
  });
});
