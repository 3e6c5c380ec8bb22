import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * Authentication of alert sources and operators. Alertmanager can send a bearer token
 * (`http_config.authorization`) but cannot sign requests, so a bearer token is the main scheme; other
 * sources may sign the request with HMAC-SHA256 instead. Either way the credential names the caller,
 * which is recorded with every alert and operator action, and carries scopes that say what it may do.
 * Pure functions plus a replay cache; authenticate.ts wires them into the server's hooks.
 */

/** Header carrying the HMAC signature: `sha256=<hex>` of {@link signingString}. */
export const SIGNATURE_HEADER = 'x-fleetmedic-signature';
/** Header carrying the signing time, in Unix seconds. */
export const TIMESTAMP_HEADER = 'x-fleetmedic-timestamp';
/** Header naming the signing key (the caller). */
export const KEY_ID_HEADER = 'x-fleetmedic-key-id';

/** What a credential may do: `alerts` post alerts, `operator` take operator actions and read state. */
export const SCOPES = ['alerts', 'operator'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scopes of a credential whose line names none: alerts only, so no old token gains operator power. */
export const DEFAULT_SCOPES: readonly Scope[] = ['alerts'];

/** An authenticated caller: the credential's name and what it may do. */
export interface Identity {
  readonly caller: string;
  readonly scopes: ReadonlySet<Scope>;
}

/** How requests are authenticated; an empty config means anonymous, allowed only on loopback. */
export interface AuthConfig {
  /** Bearer tokens, each naming its caller; without `scopes`, {@link DEFAULT_SCOPES}. */
  readonly tokens: readonly {
    readonly caller: string;
    readonly token: string;
    readonly scopes?: readonly Scope[];
  }[];
  /** HMAC secrets, each naming its caller (the key ID); without `scopes`, {@link DEFAULT_SCOPES}. */
  readonly hmacKeys: readonly {
    readonly caller: string;
    readonly secret: string;
    readonly scopes?: readonly Scope[];
  }[];
  /** Signed requests older or newer than this are refused (and the replay cache keeps this long). */
  readonly maxSkewMs?: number;
}

/** The default tolerance for a signature's timestamp: five minutes, as Slack and Stripe use. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;

/** The outcome of checking a request's credentials. */
export type AuthResult = (Identity & { readonly ok: true }) | { readonly ok: false; readonly reason: string };

function identity(caller: string, scopes: readonly Scope[] | undefined): Identity {
  return { caller, scopes: new Set(scopes ?? DEFAULT_SCOPES) };
}

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
  private readonly byDigest = new Map<string, { identity: Identity; digest: Buffer }>();

  constructor(tokens: AuthConfig['tokens']) {
    for (const t of tokens) {
      const digest = sha256(t.token);
      this.byDigest.set(digest.toString('hex'), { identity: identity(t.caller, t.scopes), digest });
    }
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The identity a presented token belongs to, if any. */
  verify(token: string): Identity | undefined {
    const digest = sha256(token);
    const hit = this.byDigest.get(digest.toString('hex'));
    return hit && timingSafeEqual(hit.digest, digest) ? hit.identity : undefined;
  }
}

/** What an HMAC signature covers: the request as sent. */
export interface SignedRequest {
  /** The HTTP method, upper case (`POST`). */
  readonly method: string;
  /** The request target as on the request line: the path, then `?` and the query when there is one. */
  readonly target: string;
  /** The raw body bytes (empty for a request without a body). */
  readonly body: string | Buffer;
}

/**
 * The string a signature is computed over: `<timestamp>.<METHOD>.<target>.<body>`, where the target is
 * the path and query exactly as sent (`/v1/alerts?dryRun=true`, or `/v1/alerts` with no query).
 *
 * @example
 * signingString(1767225600, { method: 'POST', target: '/v1/alerts', body: '{}' });
 * // '1767225600.POST./v1/alerts.{}'
 */
export function signingString(timestampSeconds: number, request: SignedRequest): Buffer {
  return Buffer.concat([
    Buffer.from(`${timestampSeconds}.${request.method.toUpperCase()}.${request.target}.`),
    Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body),
  ]);
}

/** Computes the signature header value for a request: what a signing source sends. */
export function signRequest(secret: string, timestampSeconds: number, request: SignedRequest): string {
  const mac = createHmac('sha256', secret).update(signingString(timestampSeconds, request)).digest('hex');
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
 * HMAC-SHA256 verification of a signed request (method, target, timestamp and body): a known key ID,
 * a timestamp within the skew window, a matching signature (constant-time), and not seen before.
 */
export class HmacVerifier {
  private readonly keys = new Map<string, { secret: string; identity: Identity }>();
  private readonly replays: ReplayCache;

  constructor(
    keys: AuthConfig['hmacKeys'],
    private readonly maxSkewMs: number,
  ) {
    for (const k of keys)
      this.keys.set(k.caller, { secret: k.secret, identity: identity(k.caller, k.scopes) });
    this.replays = new ReplayCache(2 * maxSkewMs);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Verifies one request's signature headers against the request as received, at time `now` (ms). */
  verify(
    headers: { keyId?: string; timestamp?: string; signature?: string },
    request: SignedRequest,
    now: number,
  ): AuthResult {
    const { keyId, timestamp, signature } = headers;
    if (!keyId || !timestamp || !signature) {
      return {
        ok: false,
        reason: `a signed request needs the ${KEY_ID_HEADER}, ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER} headers`,
      };
    }
    const key = this.keys.get(keyId);
    if (key === undefined) return { ok: false, reason: `unknown signing key ${JSON.stringify(keyId)}` };
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
    const expected = Buffer.from(signRequest(key.secret, Number(timestamp), request));
    const presented = Buffer.from(signature);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      return {
        ok: false,
        reason: 'signature does not match the request (method, path, query, timestamp, body)',
      };
    }
    if (!this.replays.remember(`${keyId}:${signature}`, now)) {
      return { ok: false, reason: 'replayed request: this signature was already used' };
    }
    return { ok: true, ...key.identity };
  }
}

const callerSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/,
    'the caller name must be 1-64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit',
  );
const secretSchema = z.string().min(16, 'the secret must be at least 16 characters');
const scopeSchema = z
  .string()
  .transform((v) => v.split(','))
  .pipe(
    z
      .array(z.enum(SCOPES, { error: 'the scope must be alerts, operator or alerts,operator' }))
      .refine((a) => new Set(a).size === a.length, 'the scope names a scope twice'),
  );

/** One credential read from a file; `scopes` is absent when its line names none. */
export interface CredentialLine {
  readonly caller: string;
  readonly secret: string;
  readonly scopes?: readonly Scope[];
}

/**
 * Reads a credentials file: one credential per line, `<caller> <secret> [<scope>]`, or a bare
 * `<secret>` for a caller named `default`; blank lines and `#` comments are skipped. The scope is
 * `alerts`, `operator` or `alerts,operator`; a line without one gets {@link DEFAULT_SCOPES}.
 *
 * @throws ConfigError naming the file, the line and what was wrong (never the secret).
 */
export async function loadCredentialFile(
  file: string,
  what: 'token' | 'HMAC key',
): Promise<CredentialLine[]> {
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
export function parseCredentials(text: string, origin: string): CredentialLine[] {
  const out: CredentialLine[] = [];
  const callers = new Set<string>();
  const secrets = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = `${origin} line ${i + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length > 3) {
      throw new ConfigError(
        `${at}: expected "<caller> <secret> [<scope>]" or "<secret>", got ${fields.length} fields`,
      );
    }
    const [caller, secret, scope] = fields.length === 1 ? ['default', fields[0]!] : fields;
    // Messages name the field, never its value: a misordered line could put a secret anywhere.
    const check = <T>(schema: z.ZodType<T>, value: string, field: string): T => {
      const r = schema.safeParse(value);
      if (r.success) return r.data;
      throw new ConfigError(`${at}: ${field}: ${r.error.issues[0]?.message ?? 'invalid'}`);
    };
    const entry: CredentialLine = {
      caller: check(callerSchema, caller!, 'field 1 (caller)'),
      secret: check(secretSchema, secret!, fields.length === 1 ? 'the secret' : 'field 2 (secret)'),
      ...(scope !== undefined && { scopes: check(scopeSchema, scope, 'field 3 (scope)') }),
    };
    if (callers.has(entry.caller)) throw new ConfigError(`${at}: caller ${entry.caller} appears twice`);
    const sameSecret = secrets.get(entry.secret);
    if (sameSecret !== undefined) {
      throw new ConfigError(`${at}: the same secret as line ${sameSecret}: give each caller its own`);
    }
    callers.add(entry.caller);
    secrets.set(entry.secret, i + 1);
    out.push(entry);
  });
  if (out.length === 0) throw new ConfigError(`${origin} holds no credential`);
  return out;
}
