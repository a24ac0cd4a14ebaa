/**
 * One SVG page of the benchmark, written by hand (no chart library): four panels of bar charts
 * with the targets drawn as dashed lines, so a reader sees at a glance what passed.
 */
import type { BenchResult } from './result';

interface Bar {
  label: string;
  value: number;
  color: string;
}

interface Panel {
  title: string;
  unit: string;
  /** Groups of bars along the x axis; each group has a caption. */
  groups: { caption: string; bars: Bar[] }[];
  /** Logarithmic y axis (for values spanning orders of magnitude). */
  log?: boolean;
  target?: { value: number; label: string };
}

const COLORS = { p50: '#4e79a7', p95: '#f28e2b', p99: '#e15759', rate: '#59a14f', sync: '#b07aa1', host: '#4e79a7', sb: '#f28e2b', cosmos: '#76b7b2' };
const WIDTH = 560;
const HEIGHT = 300;
const MARGIN = { top: 40, right: 16, bottom: 58, left: 58 };

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number): string => (!Number.isFinite(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function panelSvg(panel: Panel, x0: number, y0: number): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const values = panel.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => Number.isFinite(v) && v > 0);
  const highest = Math.max(...values, panel.target?.value ?? 0, 1e-9) * 1.1;
  const top = panel.log ? 10 ** Math.ceil(Math.log10(highest)) : niceMax(highest);
  const bottom = panel.log ? 10 ** Math.floor(Math.log10(Math.max(Math.min(...values, top), 1e-3))) : 0;
  const y = (v: number): number => {
    if (!Number.isFinite(v) || v <= 0) return plotH;
    if (!panel.log) return plotH - (v / top) * plotH;
    const f = (Math.log10(Math.max(v, bottom)) - Math.log10(bottom)) / (Math.log10(top) - Math.log10(bottom));
    return plotH - f * plotH;
  };
  const parts: string[] = [];
  parts.push(`<g transform="translate(${x0},${y0})">`);
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff" stroke="#ddd"/>`);
  parts.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(panel.title)}</text>`);
  parts.push(`<g transform="translate(${MARGIN.left},${MARGIN.top})">`);
  // Grid and y labels.
  const ticks = panel.log
    ? Array.from({ length: Math.round(Math.log10(top / bottom)) + 1 }, (_, i) => bottom * 10 ** i)
    : Array.from({ length: 5 }, (_, i) => (top * i) / 4);
  for (const t of ticks) {
    parts.push(`<line x1="0" x2="${plotW}" y1="${y(t === 0 ? 1e-12 : t).toFixed(1)}" y2="${y(t === 0 ? 1e-12 : t).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="-6" y="${(y(t === 0 ? 1e-12 : t) + 4).toFixed(1)}" text-anchor="end" font-size="10" fill="#555">${fmt(t)}</text>`);
  }
  parts.push(`<text transform="translate(-44,${plotH / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">${escapeXml(panel.unit)}</text>`);
  // Bars.
  const groupW = plotW / Math.max(1, panel.groups.length);
  panel.groups.forEach((group, gi) => {
    const barW = Math.min(36, (groupW * 0.8) / Math.max(1, group.bars.length));
    const start = gi * groupW + (groupW - barW * group.bars.length) / 2;
    group.bars.forEach((bar, bi) => {
      const bx = start + bi * barW;
      const by = y(bar.value);
      parts.push(`<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotH - by).toFixed(1)}" fill="${bar.color}"><title>${escapeXml(`${group.caption} ${bar.label}: ${fmt(bar.value)} ${panel.unit}`)}</title></rect>`);
      parts.push(`<text x="${(bx + barW / 2 - 1).toFixed(1)}" y="${(by - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${fmt(bar.value)}</text>`);
    });
    parts.push(`<text x="${(gi * groupW + groupW / 2).toFixed(1)}" y="${plotH + 16}" text-anchor="middle" font-size="10" fill="#333">${escapeXml(group.caption)}</text>`);
  });
  parts.push(`<line x1="0" x2="${plotW}" y1="${plotH}" y2="${plotH}" stroke="#333"/>`);
  if (panel.target && Number.isFinite(panel.target.value)) {
    const ty = y(panel.target.value).toFixed(1);
    parts.push(`<line x1="0" x2="${plotW}" y1="${ty}" y2="${ty}" stroke="#c00" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${plotW - 2}" y="${Number(ty) - 4}" text-anchor="end" font-size="10" fill="#c00">${escapeXml(panel.target.label)}</text>`);
  }
  // Legend: the distinct bar labels of the first group.
  const legend = panel.groups[0]?.bars ?? [];
  legend.forEach((bar, i) => {
    const lx = i * 110;
    parts.push(`<rect x="${lx}" y="${plotH + 30}" width="10" height="10" fill="${bar.color}"/>`);
    parts.push(`<text x="${lx + 14}" y="${plotH + 39}" font-size="10" fill="#333">${escapeXml(bar.label)}</text>`);
  });
  parts.push('</g></g>');
  return parts.join('\n');
}

export function benchChartSvg(result: BenchResult): string {
  const panels: Panel[] = [];
  panels.push({
    title: 'Intake latency (202), by load',
    unit: 'ms',
    log: true,
    target: { value: 50, label: 'p99 target at 100/s: 50 ms' },
    groups: result.intake.map((p) => ({
      caption: p.label,
      bars: [
        { label: 'p50', value: p.latencyMs.p50, color: COLORS.p50 },
        { label: 'p95', value: p.latencyMs.p95, color: COLORS.p95 },
        { label: 'p99', value: p.latencyMs.p99, color: COLORS.p99 },
      ],
    })),
  });
  const throughputGroups = result.intake.map((p) => ({ caption: p.label, bars: [{ label: 'accepted/s', value: p.acceptedPerSecond, color: COLORS.rate }] }));
  if (result.endToEnd) {
    throughputGroups.push({ caption: 'end to end', bars: [{ label: 'completed/s', value: result.endToEnd.completedPerSecond, color: COLORS.sync }] });
  }
  panels.push({ title: 'Throughput (targets: 500 accepted/s, 100 completed/s)', unit: 'orders/s', target: { value: 500, label: '500 accepted/s' }, groups: throughputGroups });
  if (result.comparison) {
    const c = result.comparison;
    panels.push({
      title: `Synchronous chain vs 202 path (${fmt(c.speedup)}x at p50)`,
      unit: 'ms (log)',
      log: true,
      groups: [
        { caption: 'sync chain answer', bars: [{ label: 'p50', value: c.synchronous.p50, color: COLORS.p50 }, { label: 'p99', value: c.synchronous.p99, color: COLORS.p99 }] },
        { caption: '202 answer', bars: [{ label: 'p50', value: c.accepted202.p50, color: COLORS.p50 }, { label: 'p99', value: c.accepted202.p99, color: COLORS.p99 }] },
        { caption: '202 path completed', bars: [{ label: 'p50', value: c.completion202.p50, color: COLORS.p50 }, { label: 'p99', value: c.completion202.p99, color: COLORS.p99 }] },
      ],
    });
  }
  panels.push({
    title: 'Resident memory (VmRSS)',
    unit: 'MB',
    target: { value: 300, label: 'host target: 300 MB' },
    groups: result.memory.map((m) => ({
      caption: `after ${m.afterOrders.toLocaleString('en')} orders`,
      bars: [
        { label: 'host', value: m.hostMb, color: COLORS.host },
        { label: 'Service Bus emu', value: m.serviceBusEmulatorMb, color: COLORS.sb },
        { label: 'Cosmos stand-in', value: m.cosmosEmulatorMb, color: COLORS.cosmos },
      ],
    })),
  });
  const columns = 2;
  const rows = Math.ceil(panels.length / columns);
  const header = 36;
  const totalW = columns * WIDTH + (columns + 1) * 10;
  const totalH = header + rows * (HEIGHT + 10) + 10;
  const body = panels.map((p, i) => panelSvg(p, 10 + (i % columns) * (WIDTH + 10), header + Math.floor(i / columns) * (HEIGHT + 10))).join('\n');
  const subtitle = `order saga benchmark, ${result.startedAt}, ${result.machine.cpus} CPUs, load average at start ${result.machine.loadAverageAtStart.map((l) => l.toFixed(1)).join(' ')}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH}" viewBox="0 0 ${totalW} ${totalH}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#f7f7f7"/>`,
    `<text x="12" y="24" font-size="15" fill="#222">${escapeXml(subtitle)}</text>`,
    body,
    '</svg>',
    '',
  ].join('\n');
}
