/**
 * The stand-in's TLS certificate: self-signed for 127.0.0.1 and localhost, kept on disk so that
 * clients in other processes (the Functions app) can trust exactly this certificate by file.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** True when this call wrote a new certificate (missing, expired, unreadable or wrong names). */
  generated: boolean;
}

const VALIDITY_DAYS = 365;
/** Regenerate a little before expiry so a long-running stand-in does not cross the line mid-run. */
const RENEW_BEFORE_MS = 24 * 60 * 60 * 1000;
const REQUIRED_NAMES = ['IP Address:127.0.0.1', 'DNS:localhost'];
/** Generating takes well under a second: a lock older than this was left by a process that died. */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 30_000;

/** Reuses certDir/cert.pem + key.pem while they are valid for us; writes new ones otherwise. */
export async function ensureCertificate(certDir: string, now: Date = new Date()): Promise<CertificateFiles> {
  const certFile = join(certDir, 'cert.pem');
  const keyFile = join(certDir, 'key.pem');
  const existing = readUsable(certFile, keyFile, now);
  if (existing) return { certFile, keyFile, ...existing, generated: false };

  // Stand-ins started at once on a fresh tree (parallel test suites) must not each write their own
  // pair: the last writer's certificate would be on disk while the others serve theirs, and their
  // clients, trusting the file, would refuse them. One generates; the others wait and use its pair.
  mkdirSync(certDir, { recursive: true });
  const release = await lock(join(certDir, '.generating'));
  try {
    const written = readUsable(certFile, keyFile, now);
    if (written) return { certFile, keyFile, ...written, generated: false };
    return { certFile, keyFile, ...(await generatePair(certFile, keyFile, now)), generated: true };
  } finally {
    release();
  }
}

async function generatePair(certFile: string, keyFile: string, now: Date): Promise<{ cert: string; key: string }> {
  const notBeforeDate = new Date(now.getTime() - 60_000); // tolerate small clock skew between processes
  const notAfterDate = new Date(now.getTime() + VALIDITY_DAYS * 24 * 60 * 60 * 1000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  // Write-then-rename: a client reading cert.pem at this moment sees the old or the new file, never half.
  writeAtomically(keyFile, pems.private, 0o600);
  writeAtomically(certFile, pems.cert, 0o644);
  return { cert: pems.cert, key: pems.private };
}

/** An exclusive lock between processes: creating a directory either succeeds or finds it there. */
async function lock(dir: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(dir);
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let age: number;
    try {
      age = Date.now() - statSync(dir).mtimeMs;
    } catch {
      continue; // Released meanwhile: try again at once.
    }
    if (age > STALE_LOCK_MS) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${dir} has been held by another process for too long`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readUsable(certFile: string, keyFile: string, now: Date): { cert: string; key: string } | undefined {
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    const cert = readFileSync(certFile, 'utf8');
    const key = readFileSync(keyFile, 'utf8');
    const x509 = new X509Certificate(cert);
    if (Date.parse(x509.validFrom) > now.getTime()) return undefined;
    if (Date.parse(x509.validTo) - RENEW_BEFORE_MS <= now.getTime()) return undefined;
    const names = x509.subjectAltName ?? '';
    if (!REQUIRED_NAMES.every((n) => names.includes(n))) return undefined;
    if (!x509.checkPrivateKey(createPrivateKey(key))) return undefined;
    return { cert, key };
  } catch {
    // Unparseable files are as good as missing: replace them.
    return undefined;
  }
}

function writeAtomically(file: string, content: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}
