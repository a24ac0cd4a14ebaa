import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const compiled = join(__dirname, '..', '..', 'dist', 'local', 'functions-host', 'service-bus-triggers.js');

interface Connected {
  namespace?: string;
  identityLoaded: boolean;
  error?: string;
}

/** Builds the host's client for one connection setting in a fresh process; reports what it loaded. */
function connect(env: Record<string, string>): Connected {
  const script = `
    const { ServiceBusConnections } = require(${JSON.stringify(compiled)});
    const out = {};
    try {
      const client = new ServiceBusConnections().get('SB');
      out.namespace = client.fullyQualifiedNamespace;
    } catch (err) {
      out.error = err.message;
    }
    out.identityLoaded = Object.keys(require.cache).some((k) => k.includes('@azure/identity') || k.includes('@azure/msal-node'));
    process.stdout.write(JSON.stringify(out));
  `;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SB'))) as Record<string, string>;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...clean, ...env }, encoding: 'utf8' })) as Connected;
}

describe('Service Bus connections of the host', () => {
  it('a connection string builds the client without loading the identity library', () => {
    const out = connect({ SB: 'Endpoint=sb://127.0.0.1:5672/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true' });
    expect(out).toEqual({ namespace: '127.0.0.1', identityLoaded: false });
  });

  it('a namespace alone uses managed identity, loading the identity library then', () => {
    const out = connect({ SB__fullyQualifiedNamespace: 'orders-prod.servicebus.windows.net' });
    expect(out).toEqual({ namespace: 'orders-prod.servicebus.windows.net', identityLoaded: true });
  });

  it('neither setting is an error naming both', () => {
    const out = connect({});
    expect(out.identityLoaded).toBe(false);
    expect(out.error).toMatch(/set SB \(a connection string\) or SB__fullyQualifiedNamespace/);
  });
});
