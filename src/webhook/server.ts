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
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import {
  parseAlertmanagerPayload,
  parseGenericPayload,
  type ParsedPayload,
  type ParseResult,
} from './alertmanager.js';
import { assertAuthForHost, isLoopbackHost, type AuthConfig } from './auth.js';
import { authenticate } from './authenticate.js';
import { HttpError } from './http-error.js';
import { ConfigError } from '../errors.js';
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
  /** Failed authentications per source address per window before it gets 429. Default 10. */
  readonly authFailureMax?: number;
  /** The window of {@link authFailureMax}. Default one minute. */
  readonly authFailureWindowMs?: number;
}

/** The message of every 503: what was away is in the log, under the request ID. */
export const UNAVAILABLE_MESSAGE = 'temporarily unavailable: nothing was lost, retry later';

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
   * Operator actions over HTTP (approve, reject, mark-repaired, release, retry, pause, resume, list,
   * status) behind the same credentials; see operator-routes.ts. Without it those routes do not exist.
   */
  readonly operator?: OperatorService;
  /** `release` of a node a drill cordoned (operator-routes.ts `releaseDrill`). */
  readonly releaseDrill?: (node: string) => Promise<string | undefined>;
  /** Serve HTTPS with this certificate chain and key (PEM) instead of plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Whether `GET /metrics` is served on this server. Default true; false when it has a listener of its own. */
  readonly serveMetrics?: boolean;
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

/**
 * Builds the webhook (not yet listening): `POST /v1/alerts/alertmanager` (Alertmanager webhook v4),
 * `POST /v1/alerts` (generic form), both with `?dryRun=true` to answer "what would this payload do"
 * without acting; `GET /healthz`; `GET /metrics` (Prometheus).
 *
 * Firing alerts start or join their node's remediation (signal-with-start), resolved ones are
 * signalled to the running remediation. The answer, 202, is sent only after Temporal acknowledged
 * every signal; when Temporal or Kubernetes cannot be reached it is 503 so Alertmanager retries.
 * Invalid payloads get 400 (422 when every alert in it is unusable) with what was wrong. A 5xx answer
 * carries a generic message and the request ID (also in `x-request-id`); the details are logged under it.
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
  const knownRuns = new BoundedMap<string, string>(50_000);
  const inFlight = new Map<string, Promise<{ workflowId: string; runId: string }>>();
  const dedupeWindowMs = deps.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  const acknowledged = new BoundedMap<string, { until: number; workflowId: string; runId: string }>(100_000);

  const options = {
    loggerInstance: log,
    bodyLimit,
    // Per-request lines would flood the log in an alert storm; decisions are logged instead.
    // Each line logged for a request carries its `requestId`, the one a 5xx answer names.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // Our own IDs, never a client's (requestIdHeader stays off): nobody can forge a log line's ID.
    genReqId: () => randomUUID(),
    // The body is always parsed by the JSON parser below, which keeps the raw bytes for HMAC.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  } as const;
  // With `https` Fastify serves TLS; the instance differs only in the raw server's class.
  const app = (deps.tls
    ? Fastify({ ...options, https: { cert: deps.tls.cert, key: deps.tls.key } })
    : Fastify(options)) as unknown as WebhookApp;

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    const { status, message, details, headers } = describeError(err, bodyLimit);
    if (headers) void reply.headers(headers);
    if (status < 500) return reply.code(status).send({ error: message, ...details });
    // 503 is a dependency being away, 500 a bug worth its stack; either way the details stay here.
    if (status === 503) {
      request.log.warn({ caller: request.caller, error: message, ...details }, 'answering 503');
      void reply.header('retry-after', '5');
      return reply.code(503).send({ error: UNAVAILABLE_MESSAGE, requestId: request.id });
    }
    request.log.error({ err, caller: request.caller }, 'webhook request failed');
    return reply.code(status).send({ error: 'internal error', requestId: request.id });
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
  if (deps.serveMetrics ?? true) addMetricsRoute(app, metrics);

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

    authenticate(alerts, {
      auth: deps.auth,
      metrics,
      clock,
      failures: {
        max: deps.limits?.authFailureMax ?? 10,
        windowMs: deps.limits?.authFailureWindowMs ?? 60_000,
      },
    });

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
      await alerts.register(operatorRoutes, {
        operator: deps.operator,
        ...(deps.releaseDrill && { releaseDrill: deps.releaseDrill }),
      });
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
    alerts.post(ROUTES.alertmanager, { config: { scope: 'alerts' } }, handle('alertmanager'));
    alerts.post(ROUTES.generic, { config: { scope: 'alerts' } }, handle('generic'));
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

function isTrue(value: unknown): boolean {
  return value === 'true' || value === '1' || value === '';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps any error to a status and a message that says what was wrong. */
function describeError(
  err: FastifyError | HttpError,
  bodyLimit: number,
): {
  status: number;
  message: string;
  details?: Record<string, unknown>;
  headers?: Record<string, string>;
} {
  if (err instanceof HttpError) {
    return {
      status: err.statusCode,
      message: err.message,
      ...(err.details && { details: err.details }),
      ...(err.headers && { headers: err.headers }),
    };
  }
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
  return { status, message: err.message };
}

function addMetricsRoute(app: FastifyInstance | WebhookApp, metrics: WebhookMetrics): void {
  (app as FastifyInstance).get(ROUTES.metrics, async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
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
  /** `http://host:port`, or `https://` with TLS. */
  readonly url: string;
  /** Where `/metrics` is served: `<url>/metrics`, or the metrics listener's. */
  readonly metricsUrl: string;
  close(): Promise<void>;
}

/** Where and how the webhook listens. */
export interface ListenOptions {
  /** Address to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port; default 0 (any free port). */
  readonly port?: number;
  /** A listener of its own for `/metrics` (plain HTTP), instead of the webhook's; host default 127.0.0.1. */
  readonly metricsListener?: { readonly host?: string; readonly port: number };
  /** Allow `/metrics`, which has no credentials, on a non-loopback address. */
  readonly allowUnauthenticatedMetrics?: boolean;
}

/**
 * Checks that `/metrics`, which answers anyone, may be served on `host`: only on loopback unless the
 * operator allowed it explicitly (the process metrics and alert counts are nobody else's business).
 *
 * @throws ConfigError naming the host and the option that allows it.
 */
export function assertMetricsHost(host: string, allowed: boolean): void {
  if (!allowed && !isLoopbackHost(host)) {
    throw new ConfigError(
      `/metrics would be served on ${host}, which is not a loopback address, without credentials: ` +
        'bind it to loopback with --metrics-host/--metrics-port, or allow it with --allow-unauthenticated-metrics',
    );
  }
}

/**
 * Builds and starts the webhook on `host:port` (default 127.0.0.1, port 0 = any free port), and the
 * metrics listener when asked. Refuses to bind a non-loopback address without credentials configured,
 * or to serve `/metrics` on one unless allowed.
 */
export async function startWebhookServer(deps: WebhookDeps & ListenOptions): Promise<RunningWebhook> {
  const host = deps.host ?? '127.0.0.1';
  assertAuthForHost(deps.auth, host);
  const separate = deps.metricsListener;
  const metricsHost = separate ? (separate.host ?? '127.0.0.1') : host;
  assertMetricsHost(metricsHost, deps.allowUnauthenticatedMetrics ?? false);
  const metrics = deps.metrics ?? createWebhookMetrics();
  const app = await buildWebhookServer({ ...deps, metrics, serveMetrics: !separate });
  await app.listen({ host, port: deps.port ?? 0 });
  const url = listeningUrl(app.server, deps.tls ? 'https' : 'http', host);
  if (!separate) return { app, url, metricsUrl: `${url}/metrics`, close: () => app.close() };
  const metricsApp = Fastify({ logger: false });
  addMetricsRoute(metricsApp, metrics);
  try {
    await metricsApp.listen({ host: metricsHost, port: separate.port });
  } catch (err) {
    await app.close();
    throw err;
  }
  return {
    app,
    url,
    metricsUrl: `${listeningUrl(metricsApp.server, 'http', metricsHost)}/metrics`,
    close: async () => {
      await Promise.all([app.close(), metricsApp.close()]);
    },
  };
}

function listeningUrl(server: { address(): unknown }, scheme: string, host: string): string {
  const address = server.address() as { port: number } | string | null;
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
