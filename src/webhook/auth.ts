import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import { ConfigError } from '../errors.js';

/**
 * Authentication of alert sources. Alertmanager can send a bearer token (`http_config.authorization`)
 * but cannot sign requests, so a bearer token is the main scheme; other sources may sign the body
 * with HMAC-SHA256 instead. Either way the credential names the caller, which is recorded with every
 * alert. Pure functions plus a replay cache; the server wires them into its hooks.
 */

/** Header carrying the HMAC signature: `sha256=<hex>` of `<timestamp>.<raw body>`. */
export const SIGNATURE_HEADER = 'x-fleetmedic-signature';
/** Header carrying the signing time, in Unix seconds. */
export const TIMESTAMP_HEADER = 'x-fleetmedic-timestamp';
/** Header naming the signing key (the caller). */
export const KEY_ID_HEADER = 'x-fleetmedic-key-id';

/** How requests are authenticated; an empty config means anonymous, allowed only on loopback. */
export interface AuthConfig {
  /** Bearer tokens, each naming its caller. */
  readonly tokens: readonly { readonly caller: string; readonly token: string }[];
  /** HMAC secrets, each naming its caller (the key ID). */
  readonly hmacKeys: readonly { readonly caller: string; readonly secret: string }[];
  /** Signed requests older or newer than this are refused (and the replay cache keeps this long). */
  readonly maxSkewMs?: number;
}

/** The default tolerance for a signature's timestamp: five minutes, as Slack and Stripe use. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;

/** The outcome of checking a request's credentials. */
export type AuthResult =
  | { readonly ok: true; readonly caller: string; readonly scheme: 'bearer' | 'hmac' | 'anonymous' }
  | { readonly ok: false; readonly reason: string };

function sha256(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/** True when `host` is a loopback address or name (the only place anonymous callers are allowed). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}

/**
 * Checks that the server may start with this auth config on this host: credentials are required
 * whenever it binds a non-loopback address, because anyone who can reach it could cordon nodes.
 *
 * @throws ConfigError naming the host when no token or HMAC key is configured.
 */
export function assertAuthForHost(auth: AuthConfig, host: string): void {
  if (!isLoopbackHost(host) && auth.tokens.length === 0 && auth.hmacKeys.length === 0) {
    throw new ConfigError(
      `the webhook binds ${host}, which is not a loopback address: a bearer token (--token-file) ` +
        'or an HMAC key (--hmac-key-file) is required',
    );
  }
}

/**
 * Bearer-token verification. Tokens are kept as SHA-256 digests and looked up by the digest of the
 * presented token: hashing first makes the lookup's timing independent of how much of a secret an
 * attacker guessed, and the final comparison is constant-time anyway.
 */
export class TokenVerifier {
  private readonly byDigest = new Map<string, { caller: string; digest: Buffer }>();

  constructor(tokens: AuthConfig['tokens']) {
    for (const t of tokens) {
      const digest = sha256(t.token);
      this.byDigest.set(digest.toString('hex'), { caller: t.caller, digest });
    }
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The caller a presented token belongs to, if any. */
  verify(token: string): string | undefined {
    const digest = sha256(token);
    const hit = this.byDigest.get(digest.toString('hex'));
    return hit && timingSafeEqual(hit.digest, digest) ? hit.caller : undefined;
  }
}

/** Computes the signature header value for a body: what a signing source sends. */
export function signBody(secret: string, timestampSeconds: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
  return `sha256=${mac}`;
}

/**
 * Remembers signatures seen within the skew window, so a captured signed request cannot be sent
 * again. Bounded: when full, the oldest entries go first (they are the closest to expiring anyway).
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  /** Records `key` at `now`; false when it was already seen within the window (a replay). */
  remember(key: string, now: number): boolean {
    this.expire(now);
    const at = this.seen.get(key);
    if (at !== undefined && now - at <= this.ttlMs) return false;
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.seen.set(key, now);
    return true;
  }

  private expire(now: number): void {
    // Map iteration is in insertion order, which is time order here.
    for (const [key, at] of this.seen) {
      if (now - at <= this.ttlMs) break;
      this.seen.delete(key);
    }
  }
}

/**
 * HMAC-SHA256 verification of a signed body: a known key ID, a timestamp within the skew window, a
 * matching signature (constant-time), and not seen before.
 */
export class HmacVerifier {
  private readonly keys = new Map<string, string>();
  private readonly replays: ReplayCache;

  constructor(
    keys: AuthConfig['hmacKeys'],
    private readonly maxSkewMs: number,
  ) {
    for (const k of keys) this.keys.set(k.caller, k.secret);
    this.replays = new ReplayCache(2 * maxSkewMs);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Verifies one request's signature headers against its raw body at time `now` (ms). */
  verify(
    headers: { keyId?: string; timestamp?: string; signature?: string },
    rawBody: Buffer,
    now: number,
  ): AuthResult {
    const { keyId, timestamp, signature } = headers;
    if (!keyId || !timestamp || !signature) {
      return {
        ok: false,
        reason: `a signed request needs the ${KEY_ID_HEADER}, ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER} headers`,
      };
    }
    const secret = this.keys.get(keyId);
    if (secret === undefined) return { ok: false, reason: `unknown signing key ${JSON.stringify(keyId)}` };
    if (!/^\d{1,12}$/.test(timestamp)) {
      return {
        ok: false,
        reason: `${TIMESTAMP_HEADER} must be Unix seconds, got ${JSON.stringify(timestamp)}`,
      };
    }
    const skew = Math.abs(now - Number(timestamp) * 1000);
    if (skew > this.maxSkewMs) {
      return {
        ok: false,
        reason: `signature timestamp is ${Math.round(skew / 1000)} s away from the server's clock (limit ${Math.round(this.maxSkewMs / 1000)} s)`,
      };
    }
    const expected = Buffer.from(signBody(secret, Number(timestamp), rawBody));
    const presented = Buffer.from(signature);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      return { ok: false, reason: 'signature does not match the body' };
    }
    if (!this.replays.remember(`${keyId}:${signature}`, now)) {
      return { ok: false, reason: 'replayed request: this signature was already used' };
    }
    return { ok: true, caller: keyId, scheme: 'hmac' };
  }
}

const callerName = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/**
 * Reads a credentials file: one credential per line, `<caller> <secret>`, or a bare `<secret>` for a
 * caller named `default`; blank lines and `#` comments are skipped.
 *
 * @throws ConfigError naming the file and line when a line is malformed or a caller repeats.
 */
export async function loadCredentialFile(
  file: string,
  what: 'token' | 'HMAC key',
): Promise<{ caller: string; secret: string }[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${what} file ${file} could not be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseCredentials(text, `${what} file ${file}`);
}

/** Parses credential lines (see {@link loadCredentialFile}). */
export function parseCredentials(text: string, origin: string): { caller: string; secret: string }[] {
  const out: { caller: string; secret: string }[] = [];
  const callers = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    if (parts.length > 2)
      throw new ConfigError(`${origin} line ${i + 1}: expected "<caller> <secret>" or "<secret>"`);
    const [caller, secret] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['default', parts[0]!];
    if (!callerName.test(caller)) {
      throw new ConfigError(`${origin} line ${i + 1}: caller name ${JSON.stringify(caller)} is not valid`);
    }
    if (secret.length < 16)
      throw new ConfigError(`${origin} line ${i + 1}: the secret must be at least 16 characters`);
    if (callers.has(caller)) throw new ConfigError(`${origin} line ${i + 1}: caller ${caller} appears twice`);
    callers.add(caller);
    out.push({ caller, secret });
  });
  if (out.length === 0) throw new ConfigError(`${origin} holds no credential`);
  return out;
}
