import type { ServerResponse } from 'node:http';
import { BrokenCircuitError, IsolatedCircuitError } from 'cockatiel';
import type { Dispatcher } from 'undici';
import { classify, type AttemptOutcome, type OomRule, type StreamProgress } from './classify.js';
import type { GatewayConfig } from './config.js';
import type { StreamContinuer } from './continuation.js';
import type { GatewayMetrics } from './metrics.js';
import type { Replica } from './replica.js';
import type { ReplicaSet } from './replica-set.js';
import { RetryBudget } from './retry-budget.js';
import { errorEvent, openAiError } from './sse.js';
import { attempt, type StreamSink, type UpstreamRequest } from './upstream.js';

/** Response headers the gateway adds. */
export const HEADERS = {
  replica: 'x-fleetmedic-replica',
  attempts: 'x-fleetmedic-attempts',
  fallback: 'x-fleetmedic-fallback',
} as const;

/** Upstream response headers passed on to the client. */
const PASSED_HEADERS = ['content-type', 'retry-after', 'cache-control'];

/** One client request on its way through the gateway. */
interface Exchange {
  readonly route: string;
  readonly request: UpstreamRequest;
  /** The parsed JSON body, for the fallback's model and a continuation. */
  readonly json: Record<string, unknown> | undefined;
  readonly res: ServerResponse;
  readonly signal: AbortSignal;
  readonly deadline: number;
  readonly started: number;
  attempts: number;
  source: string;
  firstByteSeen: boolean;
}

/** What the gateway needs besides its configuration. */
export interface GatewayDeps {
  readonly replicas: ReplicaSet;
  readonly metrics: GatewayMetrics;
  /** The fallback model service, when configured. */
  readonly fallback?: Dispatcher;
  readonly continuer?: StreamContinuer;
}

/**
 * The routing core: load shedding, replica choice, retries within the budget, error classes,
 * fallback, and streams. Everything it knows is per-process.
 */
export class Gateway {
  readonly budget: RetryBudget;
  private inFlight = 0;
  private readonly oom: OomRule;

  constructor(
    private readonly config: GatewayConfig,
    private readonly deps: GatewayDeps,
  ) {
    this.budget = new RetryBudget(config.retry);
    this.oom = { status: config.oom.status, bodyPattern: new RegExp(config.oom.bodyPattern, 'i') };
  }

  /** Proxies one client request and answers it; never throws. */
  async proxy(
    route: string,
    request: UpstreamRequest,
    json: Record<string, unknown> | undefined,
    res: ServerResponse,
  ): Promise<void> {
    const { metrics } = this.deps;
    if (this.inFlight >= this.config.maxConcurrent) {
      metrics.shed.inc();
      this.sendError(res, 429, 'the gateway is at its concurrency limit; retry later', 'overloaded', {
        'retry-after': String(this.config.retryAfterSeconds),
        [HEADERS.attempts]: '0',
      });
      metrics.requests.inc({ route, status: '429', source: 'shed' });
      return;
    }
    this.inFlight++;
    this.budget.requestStarted();
    metrics.inFlight.inc();
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) ac.abort();
    };
    res.once('close', onClose);
    const started = performance.now();
    const exchange: Exchange = {
      route,
      request,
      json,
      res,
      signal: ac.signal,
      deadline: Date.now() + this.config.timeouts.requestMs,
      started,
      attempts: 0,
      source: 'gateway',
      firstByteSeen: false,
    };
    try {
      await this.route(exchange);
    } catch (err) {
      this.failExchange(exchange, `gateway error: ${(err as Error).message}`);
    } finally {
      res.off('close', onClose);
      this.inFlight--;
      this.budget.requestEnded();
      metrics.inFlight.dec();
      metrics.latency.observe({ route }, (performance.now() - started) / 1000);
      metrics.requests.inc({ route, status: String(res.statusCode), source: exchange.source });
    }
  }

  private async route(x: Exchange): Promise<void> {
    const { replicas, metrics } = this.deps;
    const tried = new Set<string>();
    let last: { outcome: AttemptOutcome; replica: Replica } | undefined;
    let retryReason: string | undefined;
    for (;;) {
      if (x.signal.aborted) return;
      if (last && x.attempts >= this.config.retry.maxAttempts) {
        return this.deliverFailure(x, last.outcome, last.replica.id);
      }
      const replica = replicas.pick(tried);
      if (!replica) {
        if (this.deps.fallback) return this.viaFallback(x, 'no-replica');
        if (last) return this.deliverFailure(x, last.outcome, last.replica.id);
        return this.sendError(x.res, 503, 'no replica is available', 'no_replica', this.marks(x, 'none'));
      }
      // A retry after a failure spends the budget; re-routing away from a loading replica costs nothing.
      const budgeted = retryReason !== undefined && retryReason !== 'not-ready';
      if (budgeted && !this.budget.tryAcquire()) {
        metrics.budgetExhausted.inc();
        return this.deliverFailure(x, last!.outcome, last!.replica.id);
      }
      if (retryReason !== undefined) metrics.retries.inc({ reason: retryReason });
      tried.add(replica.id);
      x.attempts++;
      let outcome: AttemptOutcome;
      replica.inFlight++;
      try {
        outcome = await replica.execute(() => this.attemptOn(x, replica.pool, replica.id));
      } catch (err) {
        // The breaker opened between pick and execute (another request's failure): not an attempt.
        if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
          x.attempts--;
          continue;
        }
        throw err;
      } finally {
        replica.inFlight--;
        if (budgeted) this.budget.release();
      }
      metrics.attempts.inc({ replica: replica.id, outcome: outcome.kind });
      const action = classify(outcome, this.oom);
      switch (action.kind) {
        case 'done':
          if (!x.res.writableEnded) x.res.end();
          return;
        case 'deliver':
        case 'rate-limited':
          return this.deliver(x, outcome, replica.id);
        case 'oom':
          replica.lastFailure = 'out of memory';
          if (this.deps.fallback) return this.viaFallback(x, 'oom');
          return this.deliver(x, outcome, replica.id);
        case 'not-ready':
          replicas.markNotReady(replica);
          break;
        case 'retry':
          replica.lastFailure = describeOutcome(outcome);
          if (action.eject) replicas.eject(replica, 'connection');
          break;
        case 'stream-broken':
          if (outcome.kind === 'stream-broken') {
            replica.lastFailure = `stream broken: ${outcome.error}`;
            if (outcome.error.includes('ECONNRESET') || outcome.error.includes('UND_ERR_SOCKET')) {
              replicas.eject(replica, 'connection');
            }
            return this.afterBreak(x, outcome.progress, tried);
          }
          return;
      }
      last = { outcome, replica };
      retryReason = action.kind === 'retry' ? action.reason : 'not-ready';
    }
  }

  /** Runs one attempt with a sink that commits the client to this upstream at its first event. */
  private attemptOn(
    x: Exchange,
    upstream: Dispatcher,
    id: string,
    request = x.request,
    fallback?: string,
  ): Promise<AttemptOutcome> {
    const sink: StreamSink = {
      begin: () => {
        this.firstByte(x);
        x.res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          ...this.marks(x, id, fallback),
        });
      },
      write: (events) => write(x.res, events),
    };
    return attempt(
      upstream,
      request,
      sink,
      {
        ttfbMs: this.config.timeouts.ttfbMs,
        idleMs: this.config.timeouts.streamIdleMs,
        deadline: x.deadline,
        track: this.config.continuation && this.deps.continuer !== undefined,
      },
      x.signal,
    );
  }

  private async viaFallback(x: Exchange, reason: 'no-replica' | 'oom'): Promise<void> {
    const fallback = this.deps.fallback!;
    this.deps.metrics.fallbacks.inc({ reason });
    x.source = 'fallback';
    x.attempts++;
    const model = this.config.fallbackModel;
    const request: UpstreamRequest =
      model && x.json ? { ...x.request, body: JSON.stringify({ ...x.json, model }) } : x.request;
    const outcome = await this.attemptOn(x, fallback, 'fallback', request, reason);
    switch (outcome.kind) {
      case 'response':
        return this.deliver(x, outcome, 'fallback', reason);
      case 'stream-broken':
        this.deps.metrics.streamBreaks.inc({ result: 'error-event' });
        return this.endStream(x, `the fallback model's stream broke: ${outcome.error}`);
      case 'streamed':
      case 'client-aborted':
        if (!x.res.writableEnded) x.res.end();
        return;
      default:
        return this.deliverFailure(x, outcome, 'fallback', reason);
    }
  }

  /** A stream broke after the client got part of it: continue it elsewhere, or end it with an error. */
  private async afterBreak(x: Exchange, progress: StreamProgress, tried: Set<string>): Promise<void> {
    const { continuer, replicas, metrics } = this.deps;
    if (this.config.continuation && continuer && x.json && continuer.supports(x.route, x.json)) {
      const replica = replicas.pick(tried);
      if (replica) {
        x.attempts++;
        replica.inFlight++;
        try {
          const outcome = await replica.execute(() =>
            continuer.continueStream({
              upstream: replica.pool,
              route: x.route,
              request: x.json!,
              progress,
              write: (events) => write(x.res, events),
              limits: {
                ttfbMs: this.config.timeouts.ttfbMs,
                idleMs: this.config.timeouts.streamIdleMs,
                deadline: x.deadline,
              },
              signal: x.signal,
            }),
          );
          if (outcome.kind === 'streamed' || outcome.kind === 'client-aborted') {
            metrics.streamBreaks.inc({ result: 'continued' });
            if (!x.res.writableEnded) x.res.end();
            return;
          }
          replica.lastFailure = describeOutcome(outcome);
        } catch {
          // The breaker opened meanwhile: the stream ends with an error below.
        } finally {
          replica.inFlight--;
        }
      }
    }
    metrics.streamBreaks.inc({ result: 'error-event' });
    this.endStream(x, 'the replica serving this stream failed and the stream could not be continued');
  }

  private endStream(x: Exchange, message: string): void {
    if (x.res.writableEnded) return;
    // No [DONE] after it: OpenAI clients raise on the error event, and none mistakes the end for a finish.
    x.res.end(errorEvent(message, 'stream_broken'));
  }

  private deliver(x: Exchange, outcome: AttemptOutcome, id: string, fallback?: string): void {
    if (outcome.kind !== 'response') return this.deliverFailure(x, outcome, id, fallback);
    if (x.source === 'gateway') x.source = 'replica';
    const headers: Record<string, string> = this.marks(x, id, fallback);
    for (const name of PASSED_HEADERS) {
      const value = outcome.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    headers['content-length'] = String(outcome.body.length);
    this.firstByte(x);
    x.res.writeHead(outcome.status, headers);
    x.res.end(outcome.body);
  }

  /** Answers for an attempt that got no usable answer (or passes on the last 5xx). */
  private deliverFailure(x: Exchange, outcome: AttemptOutcome, id: string, fallback?: string): void {
    if (outcome.kind === 'response') return this.deliver(x, outcome, id, fallback);
    const marks = this.marks(x, id, fallback);
    if (outcome.kind === 'timeout') {
      return this.sendError(x.res, 504, `upstream timed out (${outcome.phase})`, 'upstream_timeout', marks);
    }
    this.sendError(x.res, 502, `upstream failed: ${describeOutcome(outcome)}`, 'upstream_error', marks);
  }

  private failExchange(x: Exchange, message: string): void {
    if (x.res.headersSent) return this.endStream(x, message);
    this.sendError(x.res, 500, message, 'gateway_error', this.marks(x, 'none'));
  }

  private sendError(
    res: ServerResponse,
    status: number,
    message: string,
    code: string,
    headers: Record<string, string>,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const type =
      status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(openAiError(message, type, code)));
  }

  private marks(x: Exchange, id: string, fallback?: string): Record<string, string> {
    return {
      [HEADERS.replica]: id,
      [HEADERS.attempts]: String(x.attempts),
      ...(fallback !== undefined && { [HEADERS.fallback]: fallback }),
    };
  }

  private firstByte(x: Exchange): void {
    if (x.firstByteSeen) return;
    x.firstByteSeen = true;
    this.deps.metrics.ttfb.observe(
      { route: x.route, stream: String(x.request.stream) },
      (performance.now() - x.started) / 1000,
    );
  }
}

/** Writes to the client, waiting when its socket buffer is full. */
function write(res: ServerResponse, text: string): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  if (res.write(text)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function describeOutcome(outcome: AttemptOutcome): string {
  switch (outcome.kind) {
    case 'response':
      return `status ${outcome.status}`;
    case 'connection-error':
      return outcome.error;
    case 'timeout':
      return `timeout (${outcome.phase})`;
    case 'stream-broken':
      return outcome.error;
    default:
      return outcome.kind;
  }
}
