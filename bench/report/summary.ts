/** The targets of the benchmark (issue figures) checked against a result, and the printed table. */
import type { BenchResult, TargetCheck } from './result';

const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : 'n/a');
/** A pause of the load generator this long is the machine's, not its own (its work per tick is tiny). */
const MACHINE_PAUSE_MS = 100;
/** One decimal, rounded down: a rate just under its target (99.97/s) must not print as the target itself. */
export const perSecondFigure = (v: number): string => (Math.floor(v * 10) / 10).toFixed(1);
const perSecond = (v: number): string => (Number.isFinite(v) ? `${perSecondFigure(v)}/s` : 'n/a');

export function checkTargets(result: Omit<BenchResult, 'targets'>): TargetCheck[] {
  const steady = result.intake.find((p) => p.kind === 'open');
  const bestIntake = result.intake.reduce((best, p) => Math.max(best, p.acceptedPerSecond), 0);
  const lastMemory = result.memory.filter((m) => m.afterOrders >= 10_000).at(-1);
  const checks: TargetCheck[] = [
    {
      name: `intake p99 at ${steady?.ratePerSecond ?? 100} orders/s`,
      target: '<= 50 ms',
      measured: steady ? ms(steady.latencyMs.p99) : 'not run',
      pass: steady ? steady.latencyMs.p99 <= 50 && steady.accepted === steady.requests : null,
    },
    {
      name: 'accepted orders/s (best of the sweep)',
      target: '>= 500/s',
      measured: result.intake.length ? perSecond(bestIntake) : 'not run',
      pass: result.intake.length ? bestIntake >= 500 : null,
    },
    {
      name: 'completed orders/s (end to end)',
      target: '>= 100/s',
      measured: result.endToEnd ? `${perSecond(result.endToEnd.completedPerSecond)} (${result.endToEnd.completed}/${result.endToEnd.accepted})` : 'not run',
      pass: result.endToEnd ? result.endToEnd.completedPerSecond >= 100 && result.endToEnd.completed === result.endToEnd.accepted : null,
    },
    {
      name: '202 path vs synchronous chain (p50)',
      target: '>= 50x',
      measured: result.comparison ? `${result.comparison.speedup.toFixed(0)}x (${ms(result.comparison.synchronous.p50)} vs ${ms(result.comparison.accepted202.p50)})` : 'not run',
      pass: result.comparison ? result.comparison.speedup >= 50 && result.comparison.synchronousErrors === 0 && result.comparison.accepted202Errors === 0 : null,
    },
    {
      name: 'host RSS after 10,000 orders',
      target: '<= 300 MB',
      measured: lastMemory ? `${lastMemory.hostMb.toFixed(0)} MB (after ${lastMemory.afterOrders.toLocaleString('en')})` : 'not run',
      pass: lastMemory ? lastMemory.hostMb <= 300 : null,
    },
  ];
  return checks;
}

export function formatBenchSummary(result: BenchResult): string {
  const lines: string[] = [];
  lines.push(`order saga benchmark ${result.startedAt} (${result.machine.cpus} CPUs, load average at start ${result.machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')})`);
  if (result.intake.length > 0) {
    lines.push(
      '',
      `  ${'intake'.padEnd(22)} ${'accepted'.padStart(8)} ${'orders/s'.padStart(9)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'p99'.padStart(9)} ${'host loop busy'.padStart(15)} ${'CPU steal'.padStart(10)}  other answers`,
    );
  }
  for (const p of result.intake) {
    const others = Object.entries(p.otherStatuses).map(([s, n]) => `${s}: ${n}`).join(', ');
    const busy = p.hostMainThreadBusy !== undefined && Number.isFinite(p.hostMainThreadBusy) ? `${(p.hostMainThreadBusy * 100).toFixed(0)}%` : 'n/a';
    const steal = p.machine && Number.isFinite(p.machine.stealMs) ? `${p.machine.stealMs.toFixed(0)} ms` : 'n/a';
    lines.push(
      `  ${p.label.padEnd(22)} ${String(p.accepted).padStart(8)} ${p.acceptedPerSecond.toFixed(0).padStart(9)} ${ms(p.latencyMs.p50).padStart(9)} ${ms(p.latencyMs.p95).padStart(9)} ${ms(p.latencyMs.p99).padStart(9)} ${busy.padStart(15)} ${steal.padStart(10)}  ${others || '-'}`,
    );
  }
  if (result.intake.some((p) => p.hostMainThreadBusy !== undefined)) {
    lines.push(`  host loop busy: the share of the phase the host's main thread ran (it serves the API and runs every function)`);
  }
  if (result.intake.some((p) => p.machine !== undefined)) {
    lines.push(`  CPU steal: CPU time the hypervisor gave to other machines during the phase, all CPUs together (/proc/stat)`);
  }
  for (const p of result.intake) {
    const m = p.machine;
    if (!m || m.longestPauseMs < MACHINE_PAUSE_MS) continue;
    const steal = Number.isFinite(m.stealMs) ? `, CPU steal ${m.stealMs.toFixed(0)} ms` : '';
    lines.push(
      `  ${p.label}: the load generator itself stood still for up to ${m.longestPauseMs.toFixed(0)} ms ` +
        `(${m.pausesOver100Ms} pause${m.pausesOver100Ms === 1 ? '' : 's'} over 100 ms${steal}); requests in flight then waited for the machine`,
    );
  }
  if (result.endToEnd) {
    const e = result.endToEnd;
    const others = Object.entries(e.otherStates).map(([s, n]) => `${s}: ${n}`).join(', ');
    lines.push('');
    lines.push(
      `  end to end: ${e.completed}/${e.accepted} completed in ${e.seconds.toFixed(1)} s = ${perSecondFigure(e.completedPerSecond)} completed/s; ` +
        `accept-to-complete p50 ${ms(e.latencyMs.p50)}, p95 ${ms(e.latencyMs.p95)}, p99 ${ms(e.latencyMs.p99)}${others ? `; not completed: ${others}` : ''}`,
    );
    const c = e.cpuMsPerOrder;
    if (c && Number.isFinite(c.total)) {
      const cores = result.machine.cpus;
      const mainThread = e.hostMainThreadCpuMsPerOrder !== undefined && Number.isFinite(e.hostMainThreadCpuMsPerOrder) ? ` (main thread ${e.hostMainThreadCpuMsPerOrder.toFixed(1)} ms)` : '';
      lines.push(
        `  CPU per completed order: host ${c.host.toFixed(1)} ms${mainThread}, Service Bus emulator ${c.serviceBusEmulator.toFixed(1)} ms, ` +
          `Cosmos stand-in ${c.cosmosEmulator.toFixed(1)} ms, load generator ${c.loadGenerator.toFixed(1)} ms = ${c.total.toFixed(1)} ms: ` +
          `${cores} cores complete at most ${((cores * 1000) / c.total).toFixed(0)} orders/s`,
      );
    }
  }
  if (result.comparison) {
    const c = result.comparison;
    lines.push('');
    lines.push(
      `  reference latencies (inventory ${c.latencyProfile.inventory} ms, billing ${c.latencyProfile.billing} ms, notification ${c.latencyProfile.notification} ms), ${c.orders} orders, ${c.concurrency} at a time:`,
    );
    lines.push(`    synchronous chain answer  p50 ${ms(c.synchronous.p50)}  p99 ${ms(c.synchronous.p99)}  errors ${c.synchronousErrors}`);
    lines.push(`    202 path answer           p50 ${ms(c.accepted202.p50)}  p99 ${ms(c.accepted202.p99)}  errors ${c.accepted202Errors}`);
    lines.push(`    202 path completed        p50 ${ms(c.completion202.p50)}  p99 ${ms(c.completion202.p99)}  (work done in parallel after the answer)`);
    lines.push(`    the client gets its answer ${c.speedup.toFixed(0)}x sooner`);
  }
  if (result.memory.length > 0) {
    lines.push('');
    lines.push(`  ${'memory (VmRSS)'.padEnd(22)} ${'host'.padStart(9)} ${'SB emu'.padStart(9)} ${'Cosmos'.padStart(9)}`);
    for (const m of result.memory) {
      lines.push(
        `  ${`after ${m.afterOrders.toLocaleString('en')} orders`.padEnd(22)} ${`${m.hostMb.toFixed(0)} MB`.padStart(9)} ${`${m.serviceBusEmulatorMb.toFixed(0)} MB`.padStart(9)} ${`${m.cosmosEmulatorMb.toFixed(0)} MB`.padStart(9)}`,
      );
    }
  }
  lines.push('');
  lines.push(`  ${'target'.padEnd(40)} ${'wanted'.padStart(10)}  ${'measured'.padEnd(36)} result`);
  for (const t of result.targets) {
    lines.push(`  ${t.name.padEnd(40)} ${t.target.padStart(10)}  ${t.measured.padEnd(36)} ${t.pass === null ? 'NOT RUN' : t.pass ? 'PASS' : 'MISS'}`);
  }
  return lines.join('\n');
}
