import { parseConfig } from '../../src/config';
import { BusinessRuleError, ConfigurationError, ensureError, PoisonMessageError, redactSecrets, TransientError } from '../../src/errors';
import { createLogger } from '../../src/log';

describe('error kinds', () => {
  it('name each error by its class, say whose fault it is, and keep a cause', () => {
    const cause = new Error('socket hang up');
    const transient = new TransientError('cosmos unavailable', { cause });
    expect([transient.name, transient.kind, transient.isUserError, transient.cause]).toEqual(['TransientError', 'transient', false, cause]);
    const poison = new PoisonMessageError('not json');
    expect([poison.name, poison.kind, poison.isUserError]).toEqual(['PoisonMessageError', 'poison', true]);
    const rule = new BusinessRuleError('unknown sku', [{ path: 'items/0/sku', message: 'unknown' }]);
    expect([rule.name, rule.problems]).toEqual(['BusinessRuleError', [{ path: 'items/0/sku', message: 'unknown' }]]);
    expect(String(new ConfigurationError('missing setting'))).toBe('ConfigurationError: missing setting');
  });
});

describe('ensureError / redactSecrets', () => {
  it.each([
    ['Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=abc123+/=;', 'abc123'],
    ['AccountEndpoint=https://x/;AccountKey=c2VjcmV0;', 'c2VjcmV0'],
    ['https://acct.blob.core.windows.net/c?sv=1&sig=S1GN%2Bature&se=2', 'S1GN'],
    ['connect to amqp://user:hunter2@host:5672 failed', 'hunter2'],
  ])('strips the credential from %s', (text, secret) => {
    expect(redactSecrets(text)).not.toContain(secret);
    const error = ensureError(new Error(text));
    expect(error.message).not.toContain(secret);
    expect(error.stack ?? '').not.toContain(secret);
  });

  it('turns non-errors into errors', () => {
    expect(ensureError('boom').message).toContain('boom');
    expect(ensureError({ code: 1 })).toBeInstanceOf(Error);
  });

  it('keeps secrets out of structured log lines', () => {
    const lines: string[] = [];
    const sink = { info: (l: unknown) => lines.push(String(l)), warn: (l: unknown) => lines.push(String(l)), error: (l: unknown) => lines.push(String(l)) };
    createLogger(sink, { orderId: 'o-1', correlationId: 'c-1' }).error('failed', new Error('AccountKey=topsecret;'));
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: 'error', event: 'failed', orderId: 'o-1', correlationId: 'c-1' });
    expect(lines[0]).not.toContain('topsecret');
  });
});

describe('parseConfig', () => {
  const base = { ServiceBusConnection: 'Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true', CosmosDbConnection__accountEndpoint: 'https://127.0.0.1:8081/' };

  it('reads the local settings with small default latencies and fault injection off', () => {
    const config = parseConfig(base);
    expect(config.serviceBus.kind).toBe('connectionString');
    expect(config.faultInjectionEnabled).toBe(false);
    expect(config.latencyMs.billing).toBeLessThanOrEqual(20);
  });

  it('uses identity when only the namespace is set, and the reference latencies on request', () => {
    const config = parseConfig({
      ServiceBusConnection__fullyQualifiedNamespace: 'ns.servicebus.windows.net',
      CosmosDbConnection__accountEndpoint: 'https://acct.documents.azure.com/',
      SIMULATED_LATENCY_PROFILE: 'reference',
      FAULT_INJECTION_ENABLED: 'true',
    });
    expect(config.serviceBus).toEqual({ kind: 'identity', fullyQualifiedNamespace: 'ns.servicebus.windows.net' });
    expect(config.cosmos.key).toBeUndefined();
    expect(config.latencyMs).toMatchObject({ billing: 5000, notification: 2000 });
    expect(config.faultInjectionEnabled).toBe(true);
  });

  it('waits 5 s at the intake for Service Bus and the monitor unless INTAKE_WAIT_MS says otherwise', () => {
    expect(parseConfig(base).intakeWaitMs).toBe(5_000);
    expect(parseConfig({ ...base, INTAKE_WAIT_MS: '2500' }).intakeWaitMs).toBe(2_500);
    expect(() => parseConfig({ ...base, INTAKE_WAIT_MS: '0' })).toThrow(/INTAKE_WAIT_MS/);
  });

  it('has a consumer that Cosmos DB did not serve wait 10 s before failing unless CONSUMER_OUTAGE_WAIT_MS says otherwise (0: not at all)', () => {
    expect(parseConfig(base).consumerOutageWaitMs).toBe(10_000);
    expect(parseConfig({ ...base, CONSUMER_OUTAGE_WAIT_MS: '0' }).consumerOutageWaitMs).toBe(0);
    expect(parseConfig({ ...base, CONSUMER_OUTAGE_WAIT_MS: '2500' }).consumerOutageWaitMs).toBe(2_500);
    expect(() => parseConfig({ ...base, CONSUMER_OUTAGE_WAIT_MS: '-1' })).toThrow(/CONSUMER_OUTAGE_WAIT_MS/);
    expect(() => parseConfig({ ...base, CONSUMER_OUTAGE_WAIT_MS: '600000' })).toThrow(/CONSUMER_OUTAGE_WAIT_MS/);
  });

  it('names a missing or bad setting without echoing secret values', () => {
    expect(() => parseConfig({ CosmosDbConnection__accountEndpoint: 'https://x/' })).toThrow(/ServiceBusConnection/);
    expect(() => parseConfig({ ...base, BILLING_LATENCY_MS: '-5' })).toThrow(ConfigurationError);
    try {
      parseConfig({ ...base, FAULT_INJECTION_ENABLED: 'maybe' });
    } catch (err) {
      expect((err as Error).message).toContain('FAULT_INJECTION_ENABLED');
      expect((err as Error).message).not.toContain('SharedAccessKey=v');
    }
  });
});
