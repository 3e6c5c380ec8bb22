/**
 * What one attempt against a replica ended with. The attempt never throws: every way it can end is
 * one of these, so the circuit breaker and the retry loop decide from data.
 */
export type AttemptOutcome =
  /** A complete answer read into memory (non-streaming, or a streaming request answered with an error). */
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly headers: UpstreamHeaders;
      readonly body: Buffer;
    }
  /** A stream passed to the client to its end (`data: [DONE]`). */
  | { readonly kind: 'streamed' }
  /** A stream that broke after the client got some of it. */
  | { readonly kind: 'stream-broken'; readonly error: string; readonly progress: StreamProgress }
  /** No answer: the connection was refused, reset or closed before the first byte. */
  | { readonly kind: 'connection-error'; readonly code: string; readonly error: string }
  /** No answer in time: `ttfb` before the first byte, `idle` between chunks, `request` overall. */
  | { readonly kind: 'timeout'; readonly phase: 'ttfb' | 'idle' | 'request' }
  /** The client went away; the upstream request was cancelled. */
  | { readonly kind: 'client-aborted' };

/** Response headers as undici gives them. */
export type UpstreamHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** What the client has of a stream: for an error event, and for a continuation elsewhere. */
export interface StreamProgress {
  /** SSE events sent to the client. */
  readonly events: number;
  /** Events that carried text: tokens, for servers that send one token per event (llama.cpp). */
  readonly tokens: number;
  /** Text the client has received (the concatenated deltas), when it was tracked. */
  readonly text: string;
  /** The first event's `id`, `model` and `created`, when it was tracked. */
  readonly id?: string;
  readonly model?: string;
  readonly created?: number;
}

/** How the gateway treats an outcome. */
export type Action =
  /** Give the answer to the client as it is (2xx, 4xx other than 429). */
  | { readonly kind: 'deliver' }
  /** 429: give it to the client with its Retry-After; no breaker count, no retry. */
  | { readonly kind: 'rate-limited' }
  /** The replica is loading its model: not ready; route elsewhere, no breaker count. */
  | { readonly kind: 'not-ready' }
  /** The replica ran out of memory on this request: answer from the fallback model. */
  | { readonly kind: 'oom' }
  /** A failure: retry elsewhere within the budget; `eject` takes the replica out until it is healthy. */
  | { readonly kind: 'retry'; readonly reason: string; readonly eject: boolean }
  /** The stream broke after the client got part of it: continue elsewhere or end with an error event. */
  | { readonly kind: 'stream-broken' }
  /** The stream ended normally, or the client left: nothing more to do. */
  | { readonly kind: 'done' };

/** How to recognise an out-of-memory answer: a status and a body pattern. */
export interface OomRule {
  readonly status: number;
  readonly bodyPattern: RegExp;
}

/** Connection errors after which a replica is taken out of routing until a health check passes. */
const EJECTING_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const LOADING = /loading model/i;

/**
 * Decides what an outcome means (pure; table-tested). Breaker failures are connection errors,
 * timeouts and 5xx other than "Loading model"; never 4xx.
 */
export function classify(outcome: AttemptOutcome, oom: OomRule): Action {
  switch (outcome.kind) {
    case 'streamed':
    case 'client-aborted':
      return { kind: 'done' };
    case 'stream-broken':
      return { kind: 'stream-broken' };
    case 'connection-error':
      return { kind: 'retry', reason: 'connection', eject: EJECTING_CODES.has(outcome.code) };
    case 'timeout':
      return { kind: 'retry', reason: `timeout-${outcome.phase}`, eject: false };
    case 'response': {
      const { status } = outcome;
      if (status === 429) return { kind: 'rate-limited' };
      if (status === 503 && LOADING.test(bodyText(outcome.body))) return { kind: 'not-ready' };
      if (status === oom.status && oom.bodyPattern.test(bodyText(outcome.body))) return { kind: 'oom' };
      if (status >= 500) return { kind: 'retry', reason: `status-${status}`, eject: false };
      return { kind: 'deliver' };
    }
  }
}

/** True when an outcome counts as a failure for the replica's circuit breaker. */
export function isBreakerFailure(outcome: AttemptOutcome, oom: OomRule): boolean {
  if (outcome.kind === 'stream-broken') return true;
  const action = classify(outcome, oom);
  return action.kind === 'retry' || action.kind === 'oom';
}

function bodyText(body: Buffer): string {
  // Error bodies are small; a huge one is not worth scanning past its start.
  return body.subarray(0, 4096).toString('utf8');
}
