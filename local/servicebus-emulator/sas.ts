/** Shared access signature tokens, checked the way Service Bus checks them ($cbs put-token). */
import { createHmac, timingSafeEqual } from 'crypto';

export interface SasKey {
  keyName: string;
  key: string;
}

export type TokenCheck = { ok: true; audience: string; expiresAt: number } | { ok: false; reason: string };

/**
 * `SharedAccessSignature sr=<url-encoded uri>&sig=<url-encoded base64 HMAC-SHA256(key, sr + "\n" + se)>&se=<expiry s>&skn=<key name>`.
 * The signature is over `sr` exactly as it appears in the token (still URL-encoded).
 */
export function checkSasToken(token: string, key: SasKey, nowMs = Date.now()): TokenCheck {
  const prefix = 'SharedAccessSignature ';
  if (typeof token !== 'string' || !token.startsWith(prefix)) return { ok: false, reason: 'not a shared access signature' };
  const fields = new Map<string, string>();
  for (const part of token.slice(prefix.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  const skn = fields.get('skn');
  if (!sr || !sig || !se || !skn) return { ok: false, reason: 'token is missing sr, sig, se or skn' };
  if (decodeURIComponent(skn) !== key.keyName) return { ok: false, reason: `unknown key name '${decodeURIComponent(skn)}'` };
  const expiry = Number(se);
  if (!Number.isFinite(expiry)) return { ok: false, reason: 'se is not a number' };
  if (expiry * 1000 <= nowMs) return { ok: false, reason: 'token has expired' };
  const expected = createHmac('sha256', key.key).update(`${sr}\n${se}`, 'utf8').digest();
  let given: Buffer;
  try {
    given = Buffer.from(decodeURIComponent(sig), 'base64');
  } catch {
    return { ok: false, reason: 'signature is not valid base64' };
  }
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature does not match' };
  return { ok: true, audience: decodeURIComponent(sr), expiresAt: expiry * 1000 };
}

/** Entity path a token audience covers (`sb://host:port/orders` -> `orders`; namespace -> ''). */
export function audiencePath(audience: string): string {
  const m = /^[a-z]+:\/\/[^/]*\/?(.*)$/i.exec(audience);
  const path = m ? m[1] : audience;
  return path.replace(/\/+$/, '').toLowerCase();
}
