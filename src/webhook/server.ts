import rateLimit from '@fastify/rate-limit';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { pino, type Logger } from 'pino';
import {
  parseAlertmanagerPayload,
  parseGenericPayload,
  type ParsedPayload,
  type ParseResult,
} from './alertmanager.js';
import {
  assertAuthForHost,
  DEFAULT_MAX_SKEW_MS,
  HmacVerifier,
  KEY_ID_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  TokenVerifier,
  type AuthConfig,
} from './auth.js';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.js';
import { operatorRoutes } from './operator-routes.js';
import type { OperatorService } from '../client/operator-client.js';
import type { NodeLookup } from './node-lookup.js';
import {
  needsNode,
  planPayload,
  type AlertPlan,
  type IgnoreCode,
  type NodeFacts,
  type RuleSet,
} from './rules.js';
import type { RemediationStarter } from './starter.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received, for HMAC verification. */
    rawBody?: Buffer;
    /** Who sent the request, from its credentials. */
    caller?: string;
  }
}

/** Routes of the webhook. */
export const ROUTES = Object.freeze({
  alertmanager: '/v1/alerts/alertmanager',
  generic: '/v1/alerts',
  healthz: '/healthz',
  metrics: '/metrics',
});

/** Default of {@link WebhookDeps.dedupeWindowMs}: Alertmanager's default `group_interval`. */
export const DEFAULT_DEDUPE_WINDOW_MS = 5 * 60_000;

/** Request limits; each has a default suited to an Alertmanager receiver. */
export interface WebhookLimits {
  /** Largest accepted body; larger ones get 413. Default 1 MiB. */
  readonly bodyLimitBytes?: number;
  /** Requests per caller (or address, before authentication) per window; more get 429. Default 3000. */
  readonly rateLimitMax?: number;
  /** The rate-limit window. Default one minute. */
  readonly rateLimitWindowMs?: number;
}

/** Everything the webhook depends on, injected so that tests use fakes. */
export interface WebhookDeps {
  readonly clusterId: string;
  /** Task queue of the control worker that runs the remediation workflows. */
  readonly taskQueue: string;
  readonly rules: RuleSet;
  readonly starter: RemediationStarter;
  readonly nodes: NodeLookup;
  readonly auth: AuthConfig;
  readonly limits?: WebhookLimits;
  /** Wall clock in ms (signature timestamps). */
  readonly clock?: () => number;
  readonly logger?: Logger;
  readonly metrics?: WebhookMetrics;
  /**
   * A firing alert identical to one Temporal acknowledged less than this long ago (same node, alert,
   * episode, GPU, XID, source and policy; each entry lasts a random 50-100% of it) is answered from
   * that acknowledgement instead of being signalled again: the signal is durable in the workflow's
   * history, and a repeat adds nothing to it. Alertmanager re-sends a group's unchanged alerts every
   * `group_interval` (5 min by default) while the group changes, and a storm repeats them by the
   * thousand. Default 5 min, far below `repeat_interval` (4 h by default), so a re-notification after a
   * run closed still reaches Temporal; 0 turns it off.
   */
  readonly dedupeWindowMs?: number;
  /**
   * Operator actions over HTTP (approve, reject, mark-repaired, pause, resume, list, status) behind
   * the same credentials; see operator-routes.ts. Without it those routes do not exist.
   */
  readonly operator?: OperatorService;
}

/** The webhook's Fastify instance (with fleetmedic's pino logger). */
export type WebhookApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  Logger
>;

/** What happened to one alert, as the answer reports it. */
export interface AlertOutcome {
  readonly index: number;
  readonly alertName?: string;
  readonly node?: string;
  readonly result: 'started' | 'joined' | 'resolved-recorded' | 'shadow' | 'ignored' | 'rejected' | 'failed';
  readonly rule?: string;
  readonly workflowId?: string;
  readonly runId?: string;
  /** True when answered from Temporal's acknowledgement of an identical alert moments before. */
  readonly deduplicated?: boolean;
  readonly code?: IgnoreCode | 'temporal-unavailable';
  readonly reason?: string;
}

/** The 202 answer: the workflows signalled and every alert's outcome, with what was ignored and why. */
export interface WebhookAnswer {
  readonly caller: string;
  readonly workflowIds: readonly string[];
  readonly alerts: readonly AlertOutcome[];
  readonly ignored: readonly AlertOutcome[];
  /** Alerts Alertmanager truncated from the notification (`max_alerts`): fleetmedic never saw them. */
  readonly truncatedAlerts?: number;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * Builds the webhook (not yet listening): `POST /v1/alerts/alertmanager` (Alertmanager webhook v4),
 * `POST /v1/alerts` (generic form), both with `?dryRun=true` to answer "what would this payload do"
 * without acting; `GET /healthz`; `GET /metrics` (Prometheus).
 *
 * Firing alerts start or join their node's remediation (signal-with-start), resolved ones are
 * signalled to the running remediation. The answer, 202, is sent only after Temporal acknowledged
 * every signal; when Temporal or Kubernetes cannot be reached it is 503 so Alertmanager retries.
 * Invalid payloads get 400 (422 when every alert in it is unusable) with what was wrong.
 *
 * @example
 * const app = await buildWebhookServer({ clusterId, taskQueue, rules, starter, nodes, auth });
 * await app.listen({ host: '127.0.0.1', port: 9095 });
 */
export async function buildWebhookServer(deps: WebhookDeps): Promise<WebhookApp> {
  const clock = deps.clock ?? Date.now;
  const metrics = deps.metrics ?? createWebhookMetrics();
  const log = deps.logger ?? pino({ level: 'silent' });
  const bodyLimit = deps.limits?.bodyLimitBytes ?? 1024 * 1024;
  const tokens = new TokenVerifier(deps.auth.tokens);
  const hmac = new HmacVerifier(deps.auth.hmacKeys, deps.auth.maxSkewMs ?? DEFAULT_MAX_SKEW_MS);
  const authRequired = tokens.size > 0 || hmac.size > 0;
  const knownRuns = new BoundedMap<string, string>(50_000);
  const inFlight = new Map<string, Promise<{ workflowId: string; runId: string }>>();
  const dedupeWindowMs = deps.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  const acknowledged = new BoundedMap<string, { until: number; workflowId: string; runId: string }>(100_000);

  const app = Fastify({
    loggerInstance: log,
    bodyLimit,
    // Per-request lines would flood the log in an alert storm; decisions are logged instead.
    logController: new LogController({ disableRequestLogging: true }),
    // The body is always parsed by the JSON parser below, which keeps the raw bytes for HMAC.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });

  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    const { status, message, details } = describeError(err, bodyLimit);
    // 503 is a dependency being away (logged where it happens), 500 a bug worth its stack.
    if (status === 503) request.log.warn({ caller: request.caller, error: message }, 'answering 503');
    else if (status >= 500) request.log.error({ err }, 'webhook request failed');
    if (status === 503) void reply.header('retry-after', '5');
    return reply.code(status).send({ error: message, ...details });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: `no route ${request.method} ${request.url}` }),
  );
  app.addHook('onResponse', (request, reply, done) => {
    metrics.latency.observe(
      { route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.get(ROUTES.healthz, () => ({ status: 'ok' }));
  app.get(ROUTES.metrics, async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  await app.register(async (alerts) => {
    alerts.removeAllContentTypeParsers();
    const json = alerts.getDefaultJsonParser('error', 'error');
    alerts.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const raw = body as Buffer;
      request.rawBody = raw;
      void json(request, raw.toString('utf8'), (err, value) => {
        if (err) {
          done(new HttpError(400, jsonProblem(raw, err)), undefined);
          return;
        }
        done(null, value);
      });
    });

    // Bearer tokens are checked before the body is read; a signed request only after (it signs the body).
    alerts.addHook(
      'onRequest',
      syncHook((request) => {
        const header = request.headers.authorization;
        if (header !== undefined) {
          const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
          if (!m) throw authError(metrics, 'malformed', 'the Authorization header must be "Bearer <token>"');
          const caller = tokens.verify(m[1]!);
          if (caller === undefined) throw authError(metrics, 'wrong-token', 'unknown bearer token');
          request.caller = caller;
          return;
        }
        if (request.headers[SIGNATURE_HEADER] !== undefined) {
          if (hmac.size === 0)
            throw authError(metrics, 'hmac-disabled', 'signed requests are not enabled on this server');
          return;
        }
        if (authRequired) {
          throw authError(
            metrics,
            'missing',
            `credentials required: an "Authorization: Bearer <token>" header${hmac.size > 0 ? ` or the ${SIGNATURE_HEADER} headers` : ''}`,
          );
        }
        request.caller = 'anonymous';
      }),
    );
    alerts.addHook(
      'preValidation',
      syncHook((request) => {
        if (request.caller !== undefined) return;
        const result = hmac.verify(
          {
            keyId: headerValue(request, KEY_ID_HEADER),
            timestamp: headerValue(request, TIMESTAMP_HEADER),
            signature: headerValue(request, SIGNATURE_HEADER),
          },
          request.rawBody ?? Buffer.alloc(0),
          clock(),
        );
        if (!result.ok) {
          throw authError(
            metrics,
            /replayed/.test(result.reason) ? 'replayed' : 'bad-signature',
            result.reason,
          );
        }
        request.caller = result.caller;
      }),
    );

    // onRequest, after the bearer check above (route-level hooks run after the scope's): bad payloads
    // count against the limit too, and a token's caller is the key. Signed requests are keyed by
    // address, because their key ID is not verified until the body is read.
    await alerts.register(rateLimit, {
      hook: 'onRequest',
      max: deps.limits?.rateLimitMax ?? 3000,
      timeWindow: deps.limits?.rateLimitWindowMs ?? 60_000,
      keyGenerator: (request) => request.caller ?? request.ip,
      errorResponseBuilder: (_request, context) =>
        new HttpError(
          429,
          `rate limit exceeded: at most ${context.max} requests per ${context.after} for this caller`,
        ),
    });
    if (deps.operator) {
      await alerts.register(operatorRoutes, { operator: deps.operator, credentialsConfigured: authRequired });
    }

    const handle =
      (format: 'alertmanager' | 'generic') => async (request: FastifyRequest, reply: FastifyReply) => {
        const parsed: ParseResult =
          format === 'alertmanager'
            ? parseAlertmanagerPayload(request.body, deps.rules.fields)
            : parseGenericPayload(request.body);
        if (!parsed.ok) {
          request.log.info({ caller: request.caller, error: parsed.error }, 'payload refused');
          throw new HttpError(400, parsed.error, { issues: parsed.issues });
        }
        const dryRun = isTrue((request.query as Record<string, unknown> | undefined)?.dryRun);
        const plans = await planWithNodes(parsed.payload, request.caller ?? 'anonymous');
        if (dryRun) return reply.code(200).send({ dryRun: true, caller: request.caller, alerts: plans });
        const answer = await act(parsed.payload, plans, request);
        const allRejected = parsed.payload.alerts.length === 0;
        return reply
          .code(allRejected ? 422 : 202)
          .send(
            allRejected
              ? { error: `no usable alert: ${answer.ignored.map((o) => o.reason).join('; ')}`, ...answer }
              : answer,
          );
      };
    alerts.post(ROUTES.alertmanager, handle('alertmanager'));
    alerts.post(ROUTES.generic, handle('generic'));
  });

  /** Decides every alert: rule match, then the node gates (reading each node once). */
  async function planWithNodes(payload: ParsedPayload, caller: string): Promise<AlertPlan[]> {
    const names = [...new Set(payload.alerts.filter((a) => needsNode(deps.rules, a)).map((a) => a.node))];
    const facts = new Map<string, NodeFacts | null>();
    await Promise.all(
      names.map(async (name) => {
        try {
          facts.set(name, await deps.nodes.get(name));
        } catch (err) {
          metrics.nodeLookupErrors.inc();
          throw new HttpError(
            503,
            `cannot read node ${name} from Kubernetes (${errorMessage(err)}); nothing was started, retry later`,
          );
        }
      }),
    );
    return planPayload(
      deps.rules,
      deps.clusterId,
      payload,
      (name) => facts.get(name),
      `${payload.origin} via webhook (caller ${caller})`,
    );
  }

  /** Carries the plans out; every Temporal call must be acknowledged before the answer is sent. */
  async function act(payload: ParsedPayload, plans: AlertPlan[], request: FastifyRequest) {
    const caller = request.caller ?? 'anonymous';
    const settled = await Promise.allSettled(
      plans.map(async (plan): Promise<AlertOutcome> => {
        if (plan.action === 'reject') {
          return {
            index: plan.index,
            alertName: plan.alertName,
            result: 'rejected',
            code: 'invalid',
            reason: plan.reason,
          };
        }
        if (plan.action === 'ignore') {
          return {
            index: plan.index,
            alertName: plan.alertName,
            node: plan.node,
            result: 'ignored',
            code: plan.code,
            reason: plan.reason,
            ...(plan.rule !== undefined && { rule: plan.rule }),
          };
        }
        const base = { index: plan.index, alertName: plan.alertName, node: plan.node, rule: plan.rule };
        if (plan.shadow) {
          return {
            ...base,
            result: 'shadow',
            workflowId: plan.workflowId,
            reason: `shadow mode: would ${plan.action} ${plan.workflowId}`,
          };
        }
        if (plan.action === 'record-resolved') {
          const done = await deps.starter
            .recordResolved({ clusterId: deps.clusterId, node: plan.node, alert: plan.signal })
            .catch((err: unknown) => {
              throw new PlanFailure(plan.index, plan.node, 'signal', err);
            });
          return done
            ? { ...base, result: 'resolved-recorded', workflowId: done.workflowId }
            : {
                ...base,
                result: 'ignored',
                code: 'no-remediation-running',
                reason: `resolved, but no remediation of ${plan.node} is running`,
              };
        }
        const key = JSON.stringify([plan.workflowId, plan.signal, plan.policy ?? null]);
        const earlier = acknowledged.get(key);
        if (earlier && clock() < earlier.until) {
          return {
            ...base,
            result: 'joined',
            workflowId: earlier.workflowId,
            runId: earlier.runId,
            deduplicated: true,
          };
        }
        const started = await startCoalesced(key, plan).catch((err: unknown) => {
          throw new PlanFailure(plan.index, plan.node, 'signalWithStart', err);
        });
        const joined = knownRuns.get(started.workflowId) === started.runId;
        knownRuns.set(started.workflowId, started.runId);
        return {
          ...base,
          result: joined ? 'joined' : 'started',
          workflowId: started.workflowId,
          runId: started.runId,
        };
      }),
    );

    const outcomes: AlertOutcome[] = [];
    const failures: PlanFailure[] = [];
    for (const s of settled) {
      if (s.status === 'fulfilled') outcomes.push(s.value);
      else if (s.reason instanceof PlanFailure) failures.push(s.reason);
      else throw s.reason;
    }
    for (const o of outcomes) {
      metrics.alerts.inc({ result: o.result.replace('-', '_'), format: payload.format });
      if (o.result === 'ignored' || o.result === 'rejected')
        metrics.ignored.inc({ code: o.code ?? 'invalid' });
      if (o.deduplicated) metrics.deduplicated.inc();
      else if (o.result === 'started' || o.result === 'joined') metrics.workflows.inc({ action: o.result });
      const fields = { caller, node: o.node, alert: o.alertName, result: o.result, workflowId: o.workflowId };
      if (o.result === 'joined' || o.result === 'resolved-recorded') request.log.debug(fields, 'alert');
      else request.log.info({ ...fields, reason: o.reason, rule: o.rule }, 'alert');
    }
    if (payload.truncatedAlerts > 0) {
      metrics.alerts.inc({ result: 'truncated', format: payload.format }, payload.truncatedAlerts);
      request.log.warn(
        { caller, truncatedAlerts: payload.truncatedAlerts },
        'Alertmanager truncated alerts from this notification (max_alerts): raise max_alerts or set it to 0',
      );
    }
    if (failures.length > 0) {
      for (const f of failures) {
        metrics.temporalErrors.inc({ operation: f.operation });
        metrics.alerts.inc({ result: 'failed', format: payload.format });
      }
      const first = failures[0]!;
      request.log.error(
        { caller, err: first.cause, failed: failures.map((f) => f.node) },
        'Temporal did not acknowledge: answering 503 so the sender retries',
      );
      throw new HttpError(
        503,
        `Temporal did not acknowledge ${failures.length} alert(s) (${errorMessage(first.cause)}); retry later`,
        {
          failed: failures.map((f) => ({
            index: f.index,
            node: f.node,
            result: 'failed',
            code: 'temporal-unavailable',
          })),
          alerts: outcomes.sort((a, b) => a.index - b.index),
        },
      );
    }
    outcomes.sort((a, b) => a.index - b.index);
    return {
      caller,
      workflowIds: [
        ...new Set(outcomes.flatMap((o) => (o.workflowId && o.result !== 'shadow' ? [o.workflowId] : []))),
      ],
      alerts: outcomes,
      ignored: outcomes.filter(
        (o) => o.result === 'ignored' || o.result === 'rejected' || o.result === 'shadow',
      ),
      ...(payload.truncatedAlerts > 0 && { truncatedAlerts: payload.truncatedAlerts }),
    } satisfies WebhookAnswer;
  }

  /**
   * Signal-with-start, sharing one Temporal call among identical signals in flight at once (an
   * alert storm repeats the same alert): each of them is answered after that call's acknowledgement.
   */
  function startCoalesced(key: string, plan: Extract<AlertPlan, { readonly workflowId: string }>) {
    const pending = inFlight.get(key);
    if (pending) return pending;
    const call = deps.starter
      .startOrJoin({
        clusterId: deps.clusterId,
        node: plan.node,
        taskQueue: deps.taskQueue,
        alert: plan.signal,
        ...(plan.policy !== undefined && { policy: plan.policy }),
      })
      .then((ack) => {
        // Each entry lives between half and all of the window, at random: acknowledgements made
        // together in a storm then expire spread out, and their refreshes do not hit Temporal at once.
        const life = dedupeWindowMs * (0.5 + 0.5 * Math.random());
        if (dedupeWindowMs > 0) acknowledged.set(key, { until: clock() + life, ...ack });
        return ack;
      })
      .finally(() => inFlight.delete(key));
    inFlight.set(key, call);
    return call;
  }

  return app;
}

class PlanFailure extends Error {
  constructor(
    readonly index: number,
    readonly node: string,
    readonly operation: 'signal' | 'signalWithStart',
    override readonly cause: unknown,
  ) {
    super(errorMessage(cause));
  }
}

/** Says what is wrong with a body the JSON parser refused, with the position JSON.parse reports. */
function jsonProblem(raw: Buffer, err: Error): string {
  if (raw.length === 0) return 'empty body: send a JSON payload';
  try {
    JSON.parse(raw.toString('utf8'));
  } catch (syntax) {
    return `malformed JSON: ${(syntax as Error).message}`;
  }
  // Valid JSON that the parser still refused: a __proto__ or constructor.prototype key.
  return `refused JSON: ${err.message}`;
}

/** A hook that throws to refuse the request, as fastify's callback-style hook. */
function syncHook(check: (request: FastifyRequest) => void) {
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

function isTrue(value: unknown): boolean {
  return value === 'true' || value === '1' || value === '';
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function authError(metrics: WebhookMetrics, reason: string, message: string): HttpError {
  metrics.authFailures.inc({ reason });
  return new HttpError(401, message);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps any error to a status and a message that says what was wrong. */
function describeError(
  err: FastifyError | HttpError,
  bodyLimit: number,
): { status: number; message: string; details?: Record<string, unknown> } {
  if (err instanceof HttpError)
    return { status: err.statusCode, message: err.message, ...(err.details && { details: err.details }) };
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `body larger than the limit of ${bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'unsupported content type: send application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'empty body: send a JSON payload' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, message: 'the Content-Length header does not match the body' };
  }
  const status =
    typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600
      ? err.statusCode
      : 500;
  return { status, message: status >= 500 ? 'internal error' : err.message };
}

/** A Map that forgets its oldest entries beyond `max` (runs seen, for started-vs-joined). */
class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(key: K): V | undefined {
    return this.map.get(key);
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }
}

/** A listening webhook. */
export interface RunningWebhook {
  readonly app: WebhookApp;
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Builds and starts the webhook on `host:port` (default 127.0.0.1, port 0 = any free port). Refuses
 * to bind a non-loopback address without credentials configured.
 */
export async function startWebhookServer(
  deps: WebhookDeps & { readonly host?: string; readonly port?: number },
): Promise<RunningWebhook> {
  const host = deps.host ?? '127.0.0.1';
  assertAuthForHost(deps.auth, host);
  const app = await buildWebhookServer(deps);
  await app.listen({ host, port: deps.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : deps.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { app, url: `http://${shown}:${port}`, close: () => app.close() };
}
