/**
 * HTTP requests/s through the local Functions host for a trivial handler, next to a bare Node
 * `http` server answering the same bytes, in the same run: `node dist/bench/http-host.js`.
 * Options: BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 32).
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { spawnService } from '../local/service-process';
import { cpuMilliseconds } from './process-usage';

const seconds = Number(process.env['BENCH_SECONDS'] ?? 5);
const concurrency = Number(process.env['BENCH_CONCURRENCY'] ?? 32);
const root = join(__dirname, '..', '..');

interface LoadResult {
  requests: number;
  errors: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** The server process's CPU (user + system) per answered request, in µs. */
  serverCpuMicros: number;
  /** Cores the server process used while loaded: well below 1, the load generator was the limit. */
  serverCores: number;
}

/** Keep-alive load: `concurrency` loops, each sending its next request when the last answered. */
async function load(url: string, durationMs: number, serverPid: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + durationMs;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = request(
        { agent, host: target.hostname, port: target.port, path: target.pathname, method: 'GET' },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - started);
            else errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) await one();
  };
  const cpuBefore = cpuMilliseconds(serverPid);
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const serverCpuMs = cpuMilliseconds(serverPid) - cpuBefore;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return {
    requests: latencies.length,
    errors,
    perSecond: latencies.length / elapsed,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    serverCpuMicros: (serverCpuMs * 1000) / Math.max(1, latencies.length),
    serverCores: serverCpuMs / 1000 / elapsed,
  };
}

function line(name: string, r: LoadResult): string {
  return (
    `${name.padEnd(16)} ${r.perSecond.toFixed(0).padStart(8)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
    `server CPU ${r.serverCpuMicros.toFixed(0)} µs/request, ${r.serverCores.toFixed(2)} cores  (${r.requests} ok, ${r.errors} errors)`
  );
}

async function main(): Promise<void> {
  // Both servers run in their own process so the load generator (this process) is the same for both.
  const bare = await spawnService({
    name: 'bare http server',
    command: [
      process.execPath,
      '-e',
      `const http=require('http');const s=http.createServer({keepAlive:true},(q,r)=>{r.writeHead(200,{'content-type':'text/plain;charset=UTF-8','content-length':'4'});r.end('pong')});s.keepAliveTimeout=65000;s.listen(0,'127.0.0.1',()=>console.log('listening on '+s.address().port));process.on('SIGINT',()=>process.exit(0))`,
    ],
    readyLine: /listening on (\d+)/,
  });
  const host = await spawnService({
    name: 'functions host',
    command: [process.execPath, join(root, 'dist/local/functions-host/cli.js'), '--app-dir', join(root, 'test/fixtures/bench-app')],
    env: { FUNCTIONS_HTTP_PORT: '0' },
    readyLine: /Functions host listening on (http:\/\/\S+)/,
  });
  try {
    const bareUrl = `http://127.0.0.1:${bare.match[1]}/api/ping`;
    const hostUrl = `${host.match[1]}/api/ping`;
    // Warm both up (JIT, connections) before measuring.
    await load(bareUrl, 500, bare.pid);
    await load(hostUrl, 500, host.pid);
    const ms = seconds * 1000;
    const bareResult = await load(bareUrl, ms, bare.pid);
    const hostResult = await load(hostUrl, ms, host.pid);
    const ratio = hostResult.perSecond / bareResult.perSecond;
    process.stdout.write(`HTTP benchmark: ${seconds} s each, ${concurrency} concurrent keep-alive connections\n`);
    process.stdout.write(`${line('bare node http', bareResult)}\n`);
    process.stdout.write(`${line('functions host', hostResult)}\n`);
    process.stdout.write(`ratio host/bare: ${(ratio * 100).toFixed(1)}% (target >= 50%)\n`);
    // A bare server short of a whole core was waiting for this load generator: its req/s is the
    // generator's limit, and the CPU per request is the fairer comparison of the two servers.
    process.stdout.write(
      `CPU per request host/bare: ${(hostResult.serverCpuMicros / bareResult.serverCpuMicros).toFixed(1)}x` +
        (bareResult.serverCores < 0.9 ? ` (the bare server used ${bareResult.serverCores.toFixed(2)} cores: its req/s is the load generator's limit)` : '') +
        '\n',
    );
    if (hostResult.errors > 0 || bareResult.errors > 0) process.exitCode = 1;
  } finally {
    await host.stop();
    await bare.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
