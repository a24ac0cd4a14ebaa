/** host.json log levels: the most specific category wins, as in the Functions host. */
import { HostLog } from '../../local/functions-host/host-log';
import { logLevelOverrides } from '../../local/functions-host/host';

function logWith(logLevel: Record<string, string>): { log: HostLog; lines: string[] } {
  const lines: string[] = [];
  return { log: new HostLog(logLevel, (line) => lines.push(line)), lines };
}

describe('host log levels', () => {
  it("quiets a function's invocation lines with Function.<name> and keeps its own lines with Function.<name>.User", () => {
    const { log, lines } = logWith({ default: 'Information', 'Function.sweeper': 'Warning', 'Function.sweeper.User': 'Information' });
    log.functionSummary('sweeper', 'information', "Executed 'sweeper' (Succeeded)");
    log.function('sweeper', 'information', 'deadletter-sweep');
    log.functionHost('sweeper', 'error', "Exception while executing 'sweeper'");
    log.functionSummary('orders', 'information', "Executed 'orders' (Succeeded)");
    expect(lines.map((l) => l.replace(/^\S+ /, '').trim())).toEqual([
      expect.stringContaining('[sweeper] deadletter-sweep'),
      expect.stringContaining("[sweeper] Exception while executing 'sweeper'"),
      expect.stringContaining("[orders] Executed 'orders' (Succeeded)"),
    ]);
  });

  it('falls back from Function.<name> to Function to default', () => {
    const { log } = logWith({ default: 'Warning', Function: 'Error', 'Function.orders': 'Information' });
    expect(log.functionEnabled('orders', 'information')).toBe(true);
    expect(log.functionEnabled('orders', 'information', 'host')).toBe(true);
    expect(log.functionEnabled('billing', 'warning')).toBe(false);
    expect(log.functionEnabled('billing', 'error', 'host')).toBe(true);
    expect(logWith({ default: 'Warning' }).log.functionEnabled('billing', 'information')).toBe(false);
    expect(logWith({}).log.functionEnabled('billing', 'information')).toBe(true);
    // Category names match whatever their case, as in the Functions host.
    expect(logWith({ 'function.ORDERS.user': 'Error' }).log.functionEnabled('orders', 'warning')).toBe(false);
    // An app setting spelt Default overrides host.json's default (it comes later).
    expect(logWith({ default: 'Information', Default: 'Warning' }).log.hostEnabled('information')).toBe(false);
  });
});

describe('log levels from app settings', () => {
  it('reads AzureFunctionsJobHost__logging__logLevel__<category> over host.json, as on Azure', () => {
    expect(
      logLevelOverrides({
        'AzureFunctionsJobHost__logging__logLevel__Function.deadLetterSweeper': 'Information',
        AzureFunctionsJobHost__logging__logLevel__default: 'Warning',
        AzureFunctionsJobHost__extensions__http__routePrefix: 'x',
        OTHER: 'y',
      }),
    ).toEqual({ 'Function.deadLetterSweeper': 'Information', default: 'Warning' });
  });
});
