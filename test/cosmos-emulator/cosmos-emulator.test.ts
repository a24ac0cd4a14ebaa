import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCertificate } from '../../local/cosmos-emulator/certificate';
import { COSMOS_READY_LINE_PREFIX, CosmosPortInUseError, startCosmosEmulator } from '../../local/cosmos-emulator';
import { CONTAINERS, cosmosTopology } from '../../src/topology';
import { emulatorWithClient } from './emulator-with-client';

const REPO_ROOT = join(__dirname, '..', '..');
const CLI = join(REPO_ROOT, 'dist', 'local', 'cosmos-emulator', 'cli.js');

const TEMP_PREFIX = 'cosmos-standin-';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), TEMP_PREFIX));
}

function get(url: string, agent: Agent): Promise<{ res: IncomingMessage; body: string; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { 'x-ms-version': '2018-12-31' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ res, body, reusedSocket: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Cosmos DB stand-in', () => {
  const standIn = emulatorWithClient(TEMP_PREFIX);
  const { container } = standIn;

  it('serves https on 127.0.0.1 at the port it reports', () => {
    expect(standIn.emulator.port).toBeGreaterThan(0);
    expect(standIn.emulator.endpoint).toBe(`https://127.0.0.1:${standIn.emulator.port}/`);
    expect(standIn.emulator.caCertificateFile).toBe(join(standIn.certDir, 'cert.pem'));
  });

  it('has every container of the topology, each with its partition key', async () => {
    for (const expected of cosmosTopology.containers) {
      const { resource } = await container(expected.name).read();
      expect(resource?.partitionKey?.paths).toEqual([expected.partitionKeyPath]);
    }
  });

  it('creates, reads, patches and queries documents through the real SDK', async () => {
    const orders = container(CONTAINERS.orders);
    const id = `order-${Date.now()}`;
    await orders.items.create({ id, customerId: 'c-1', status: { inventory: 'pending', billing: 'pending' } });

    const { resource: read } = await orders.item(id, id).read();
    expect(read).toMatchObject({ id, customerId: 'c-1' });

    const { resource: patched } = await orders
      .item(id, id)
      .patch([{ op: 'set', path: '/status/inventory', value: 'done' }]);
    expect(patched.status).toEqual({ inventory: 'done', billing: 'pending' });

    const { resources } = await orders.items
      .query({ query: 'SELECT c.id FROM c WHERE c.status.inventory = @s', parameters: [{ name: '@s', value: 'done' }] })
      .fetchAll();
    expect(resources.map((r: { id: string }) => r.id)).toContain(id);

    const missing = await orders.item('no-such-order', 'no-such-order').read();
    expect(missing.statusCode).toBe(404);
  });

  it('pages a query with the tokens it issued, and refuses any other token with 400 as Cosmos DB does', async () => {
    const ledger = container(CONTAINERS.payments);
    const orderId = `paged-${Date.now()}`;
    for (let i = 0; i < 5; i++) await ledger.items.create({ id: `${orderId}:${i}`, orderId, kind: 'charge', amount: i });
    const query = { query: 'SELECT * FROM c WHERE c.orderId = @o ORDER BY c.id', parameters: [{ name: '@o', value: orderId }] };
    const seen: number[] = [];
    let token: string | undefined;
    do {
      const page = await ledger.items.query<{ amount: number }>(query, { maxItemCount: 2, ...(token ? { continuationToken: token } : {}) }).fetchNext();
      seen.push(...page.resources.map((r) => r.amount));
      token = page.continuationToken;
    } while (token && seen.length < 10);
    expect(seen).toEqual([0, 1, 2, 3, 4]);

    // Each of these brought the first page back before.
    for (const bad of ['xyz', 'null', '{"token":"abc"}', '{"token":"+RID:x#RT:one#TRC:1"}']) {
      const error = await ledger.items
        .query(query, { maxItemCount: 2, continuationToken: bad })
        .fetchNext()
        .then(() => undefined, (err: { code?: number; message?: string }) => err);
      expect({ bad, code: error?.code, message: error?.message }).toEqual({ bad, code: 400, message: expect.stringContaining('Invalid Continuation Token') });
    }
  });

  it('applies a conditional patch when its lower-case condition holds and answers 412 when it does not', async () => {
    const orders = container(CONTAINERS.orders);
    const id = `order-cond-${Date.now()}`;
    await orders.items.create({ id, status: { billing: 'pending' } });

    const { resource } = await orders.item(id, id).patch({
      condition: "from c where c.status.billing = 'pending'",
      operations: [{ op: 'set', path: '/status/billing', value: 'done' }],
    });
    expect(resource.status.billing).toBe('done');

    await expect(
      orders.item(id, id).patch({
        condition: "from c where c.status.billing = 'pending'",
        operations: [{ op: 'set', path: '/status/billing', value: 'charged-twice' }],
      }),
    ).rejects.toMatchObject({ code: 412 });
    const { resource: after } = await orders.item(id, id).read();
    expect(after.status.billing).toBe('done');
  });

  it('is refused by an https client that does not trust its certificate', async () => {
    const untrusting = new Agent({ keepAlive: false });
    try {
      await expect(get(standIn.emulator.endpoint, untrusting)).rejects.toMatchObject({
        code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/),
      });
    } finally {
      untrusting.destroy();
    }
  });

  it('keeps connections alive between requests', async () => {
    const keepAlive = new Agent({ ca: readFileSync(standIn.emulator.caCertificateFile), keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(standIn.emulator.endpoint, keepAlive);
      expect(first.res.statusCode).toBe(200);
      expect(first.res.headers.connection).not.toBe('close');
      const second = await get(standIn.emulator.endpoint, keepAlive);
      expect(second.res.statusCode).toBe(200);
      expect(second.reusedSocket).toBe(true);
    } finally {
      keepAlive.destroy();
    }
  });

  it('says which port is taken when it cannot listen', async () => {
    await expect(startCosmosEmulator({ port: standIn.emulator.port, certDir: standIn.certDir })).rejects.toEqual(
      expect.objectContaining({ name: 'CosmosPortInUseError', port: standIn.emulator.port }),
    );
    await expect(startCosmosEmulator({ port: standIn.emulator.port, certDir: standIn.certDir })).rejects.toBeInstanceOf(CosmosPortInUseError);
  });
});

describe('Cosmos DB stand-in certificate', () => {
  let certDir: string;
  beforeEach(() => (certDir = tempDir()));
  afterEach(() => rmSync(certDir, { recursive: true, force: true }));

  it('names 127.0.0.1 and localhost and is reused while valid', async () => {
    const first = await ensureCertificate(certDir);
    expect(first.generated).toBe(true);
    const x509 = new X509Certificate(readFileSync(first.certFile));
    expect(x509.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x509.subjectAltName).toContain('DNS:localhost');

    const again = await ensureCertificate(certDir);
    expect(again.generated).toBe(false);
    expect(again.cert).toBe(first.cert);
  });

  it('is written once when stand-ins start at once on a fresh tree, and each serves the one on disk', async () => {
    // Parallel test suites on a fresh clone start several stand-ins sharing one certificate
    // directory; their clients trust the file, so every stand-in must present what it holds.
    const emulators = await Promise.all(Array.from({ length: 3 }, () => startCosmosEmulator({ port: 0, certDir })));
    try {
      const onDisk = readFileSync(join(certDir, 'cert.pem'), 'utf8');
      const agent = new Agent({ ca: onDisk });
      try {
        for (const emulator of emulators) {
          expect(emulator.caCertificateFile).toBe(join(certDir, 'cert.pem'));
          const { res } = await get(emulator.endpoint, agent);
          expect(res.statusCode).toBe(200);
        }
      } finally {
        agent.destroy();
      }
    } finally {
      await Promise.all(emulators.map((e) => e.stop()));
    }
  });

  it('is generated by one of several callers at once; the others get the same pair', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => ensureCertificate(certDir)));
    expect(results.filter((r) => r.generated)).toHaveLength(1);
    const onDisk = readFileSync(join(certDir, 'cert.pem'), 'utf8');
    for (const r of results) expect(r.cert).toBe(onDisk);
    // The lock is gone once the pair is written.
    expect(existsSync(join(certDir, '.generating'))).toBe(false);
  });

  it('is regenerated when the certificate file is missing, and the stand-in serves the new one', async () => {
    const first = await ensureCertificate(certDir);
    rmSync(first.certFile);

    const emulator = await startCosmosEmulator({ port: 0, certDir });
    try {
      expect(existsSync(emulator.caCertificateFile)).toBe(true);
      const fresh = readFileSync(emulator.caCertificateFile, 'utf8');
      expect(fresh).not.toBe(first.cert);
      // The stand-in presents the new certificate: a client trusting only it gets through.
      const agent = new Agent({ ca: fresh });
      try {
        const { res } = await get(emulator.endpoint, agent);
        expect(res.statusCode).toBe(200);
      } finally {
        agent.destroy();
      }
    } finally {
      await emulator.stop();
    }
  });

  it('is regenerated once it has expired', async () => {
    const first = await ensureCertificate(certDir);
    const twoYearsLater = new Date(Date.now() + 2 * 365 * 24 * 60 * 60 * 1000);
    const renewed = await ensureCertificate(certDir, twoYearsLater);
    expect(renewed.generated).toBe(true);
    expect(renewed.cert).not.toBe(first.cert);
    expect(Date.parse(new X509Certificate(renewed.cert).validTo)).toBeGreaterThan(twoYearsLater.getTime());
  });
});

describe('cosmos-emulator CLI', () => {
  it('exits 1 naming the port and the variable when the port is taken', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, [CLI], {
        env: { ...process.env, COSMOS_EMULATOR_PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code).toBe(1);
      expect(output).toContain(`port ${port} is already in use`);
      expect(output).toContain('COSMOS_EMULATOR_PORT');
      expect(output).not.toContain(COSMOS_READY_LINE_PREFIX);
    } finally {
      blocker.close();
    }
  });

  it('prints one ready line with its endpoint and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI], {
      env: { ...process.env, COSMOS_EMULATOR_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        const m = /Cosmos DB stand-in listening on (https:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
        if (m) resolve(m[1]);
      });
      child.on('exit', () => reject(new Error(`exited before ready:\n${output}`)));
    });
    expect(output.split(COSMOS_READY_LINE_PREFIX)).toHaveLength(2);
    const ca = /Cosmos DB stand-in CA certificate: (.+)/.exec(output)![1].trim();
    const agent = new Agent({ ca: readFileSync(ca) });
    try {
      const { res } = await get(endpoint, agent);
      expect(res.statusCode).toBe(200);
    } finally {
      agent.destroy();
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
