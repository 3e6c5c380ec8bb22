import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DEFAULT_MAX_SKEW_MS,
  HmacVerifier,
  KEY_ID_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  TokenVerifier,
  type AuthConfig,
  type Scope,
} from './auth.js';
import { HttpError } from './http-error.js';
import type { WebhookMetrics } from './metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received, for HMAC verification. */
    rawBody?: Buffer;
    /** Who sent the request, from its credentials. */
    caller?: string;
    /** What the caller's credential may do. */
    scopes?: ReadonlySet<Scope>;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; a route inside the authenticated scope without one is refused. */
    scope?: Scope;
  }
}

/**
 * Failed authentications per source address in fixed windows: a source at `max` failures is refused
 * until its window ends. @fastify/rate-limit counts every request, not only the failed ones, so it
 * cannot do this; its `normalizeIP` still keys the sources (IPv6 by /64).
 */
export class FailureLimiter {
  // Insertion order is window order: an entry is re-inserted when its window starts again.
  private readonly sources = new Map<string, { failures: number; resetAt: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxSources = 10_000,
  ) {}

  /** How long `source` must wait before its next attempt, in ms; 0 when it may try now. */
  blockedFor(source: string, now: number): number {
    const entry = this.sources.get(source);
    if (!entry || now >= entry.resetAt || entry.failures < this.max) return 0;
    return entry.resetAt - now;
  }

  /** Records one failed attempt from `source` at `now`. */
  fail(source: string, now: number): void {
    const entry = this.sources.get(source);
    if (entry && now < entry.resetAt) {
      entry.failures++;
      return;
    }
    this.sources.delete(source);
    for (const [key, e] of this.sources) {
      if (now < e.resetAt && this.sources.size < this.maxSources) break;
      this.sources.delete(key);
    }
    this.sources.set(source, { failures: 1, resetAt: now + this.windowMs });
  }
}

/** A hook that throws to refuse the request, as fastify's callback-style hook. */
export function syncHook(check: (request: FastifyRequest) => void) {
  return (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    try {
      check(request);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  };
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface AuthenticationOptions {
  readonly auth: AuthConfig;
  readonly metrics: WebhookMetrics;
  /** Wall clock in ms (signature timestamps, failure windows). */
  readonly clock: () => number;
  /** Failed authentications per source per window before it gets 429. Default 10 a minute. */
  readonly failures?: { readonly max: number; readonly windowMs: number };
}

/**
 * Adds authentication to a Fastify scope: bearer tokens (checked before the body is read) or HMAC
 * signatures (after, since they cover it), then each route's scope (`config.scope`) before its
 * handler. Failed attempts are limited per source address. Without any credential configured every
 * caller is `anonymous` with the `alerts` scope (loopback development).
 */
export function authenticate(app: FastifyInstance, options: AuthenticationOptions): void {
  const { auth, metrics, clock } = options;
  const tokens = new TokenVerifier(auth.tokens);
  const hmac = new HmacVerifier(auth.hmacKeys, auth.maxSkewMs ?? DEFAULT_MAX_SKEW_MS);
  const authRequired = tokens.size > 0 || hmac.size > 0;
  const limit = options.failures ?? { max: 10, windowMs: 60_000 };
  const limiter = new FailureLimiter(limit.max, limit.windowMs);
  const source = (request: FastifyRequest) => normalizeIP(request.ip);

  for (const [kind, list] of [
    ['token', auth.tokens],
    ['HMAC key', auth.hmacKeys],
  ] as const) {
    for (const c of list.filter((c) => c.scopes === undefined)) {
      app.log.warn(
        { credential: c.caller, kind },
        `${kind} ${c.caller} names no scope: it may post alerts only; add "alerts", "operator" or ` +
          '"alerts,operator" to its line (docs/webhook.md)',
      );
    }
  }

  const refuse = (request: FastifyRequest, reason: string, message: string): HttpError => {
    metrics.authFailures.inc({ reason });
    limiter.fail(source(request), clock());
    return new HttpError(401, message);
  };

  app.addHook(
    'onRequest',
    syncHook((request) => {
      const wait = limiter.blockedFor(source(request), clock());
      if (wait > 0) {
        metrics.authFailures.inc({ reason: 'too-many-failures' });
        const seconds = Math.ceil(wait / 1000);
        throw new HttpError(
          429,
          `too many failed authentications from this address: retry in ${seconds} s`,
          undefined,
          { 'retry-after': String(seconds) },
        );
      }
      const header = request.headers.authorization;
      if (header !== undefined) {
        const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
        if (!m) throw refuse(request, 'malformed', 'the Authorization header must be "Bearer <token>"');
        const who = tokens.verify(m[1]!);
        if (who === undefined) throw refuse(request, 'wrong-token', 'unknown bearer token');
        request.caller = who.caller;
        request.scopes = who.scopes;
        return;
      }
      if (request.headers[SIGNATURE_HEADER] !== undefined) {
        if (hmac.size === 0)
          throw refuse(request, 'hmac-disabled', 'signed requests are not enabled on this server');
        return;
      }
      if (authRequired) {
        throw refuse(
          request,
          'missing',
          `credentials required: an "Authorization: Bearer <token>" header${hmac.size > 0 ? ` or the ${SIGNATURE_HEADER} headers` : ''}`,
        );
      }
      request.caller = 'anonymous';
      request.scopes = new Set(['alerts']);
    }),
  );

  app.addHook(
    'preValidation',
    syncHook((request) => {
      if (request.caller !== undefined) return;
      const result = hmac.verify(
        {
          keyId: headerValue(request, KEY_ID_HEADER),
          timestamp: headerValue(request, TIMESTAMP_HEADER),
          signature: headerValue(request, SIGNATURE_HEADER),
        },
        { method: request.method, target: request.raw.url ?? request.url, body: request.rawBody ?? '' },
        clock(),
      );
      if (!result.ok) {
        throw refuse(request, /replayed/.test(result.reason) ? 'replayed' : 'bad-signature', result.reason);
      }
      request.caller = result.caller;
      request.scopes = result.scopes;
    }),
  );

  app.addHook(
    'preHandler',
    syncHook((request) => {
      const needed = request.routeOptions.config.scope;
      // Fail closed: a route that forgot to declare its scope serves nobody.
      if (needed === undefined) throw new HttpError(403, 'this route declares no scope: refused');
      if (request.scopes?.has(needed)) return;
      metrics.authFailures.inc({ reason: 'scope' });
      if (!authRequired) {
        throw new HttpError(
          403,
          'operator actions need a configured credential: start the webhook with --token-file or ' +
            '--hmac-key-file, so every action records who took it',
        );
      }
      throw new HttpError(
        403,
        `credential ${request.caller ?? 'unknown'} lacks the "${needed}" scope that ` +
          `${needed === 'operator' ? 'operator actions and reads need' : 'posting alerts needs'}: ` +
          `give it "${needed}" (or "alerts,operator") in its credentials file line`,
      );
    }),
  );
}
