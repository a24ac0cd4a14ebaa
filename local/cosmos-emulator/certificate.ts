/**
 * The stand-in's TLS certificate: self-signed for 127.0.0.1 and localhost, kept on disk so that
 * clients in other processes (the Functions app) can trust exactly this certificate by file.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

/** Reuses certDir/cert.pem + key.pem while they are valid for us; writes new ones otherwise. */
export async function ensureCertificate(certDir: string, now: Date = new Date()): Promise<CertificateFiles> {
  const certFile = join(certDir, 'cert.pem');
  const keyFile = join(certDir, 'key.pem');
  const existing = readUsable(certFile, keyFile, now);
  if (existing) return { certFile, keyFile, ...existing, generated: false };

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
  mkdirSync(certDir, { recursive: true });
  // Write-then-rename: a client reading cert.pem at this moment sees the old or the new file, never half.
  writeAtomically(keyFile, pems.private, 0o600);
  writeAtomically(certFile, pems.cert, 0o644);
  return { certFile, keyFile, cert: pems.cert, key: pems.private, generated: true };
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
