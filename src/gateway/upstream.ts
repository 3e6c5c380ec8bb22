import type { Dispatcher } from 'undici';
import type { AttemptOutcome } from './classify.js';
import { SseFramer } from './sse.js';

/** A client request as the gateway sends it upstream. */
export interface UpstreamRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  /** The client asked for a stream (`"stream": true`). */
  readonly stream: boolean;
}

/** Where a stream goes once its first complete event arrived. */
export interface StreamSink {
  /** Commits to this attempt: sends the client the status line and headers. Called once. */
  begin(): void;
  /** Sends complete SSE events; resolves when the client can take more. */
  write(events: string): Promise<void>;
}

/** Time limits of one attempt. */
export interface AttemptLimits {
  readonly ttfbMs: number;
  readonly idleMs: number;
  /** Epoch ms by which the whole client request must be done. */
  readonly deadline: number;
  /** Track the text of a stream (needed for a continuation elsewhere). */
  readonly track: boolean;
}

type Phase = 'ttfb' | 'idle' | 'request';

/**
 * Sends one request to one upstream and says how it ended; never throws. A non-streaming answer,
 * and any answer other than 200 to a streaming request, is read into memory (classification needs
 * its status and body). A 200 stream goes to `sink` event by event once its first event arrived;
 * until then nothing reached the client, so any failure can be retried elsewhere.
 */
export async function attempt(
  upstream: Dispatcher,
  request: UpstreamRequest,
  sink: StreamSink | undefined,
  limits: AttemptLimits,
  client: AbortSignal,
): Promise<AttemptOutcome> {
  if (client.aborted) return { kind: 'client-aborted' };
  const ac = new AbortController();
  let timedOut: Phase | undefined;
  const expire = (phase: Phase) => () => {
    timedOut = phase;
    ac.abort();
  };
  const onClientAbort = () => ac.abort();
  client.addEventListener('abort', onClientAbort, { once: true });
  const remaining = Math.max(1, limits.deadline - Date.now());
  const deadlineTimer = setTimeout(expire('request'), remaining);
  let phaseTimer = setTimeout(expire('ttfb'), Math.min(limits.ttfbMs, remaining));
  const firstByte = () => {
    clearTimeout(phaseTimer);
    phaseTimer = setTimeout(expire('idle'), limits.idleMs);
  };
  let framer: SseFramer | undefined;
  let begun = false;
  try {
    const res = await upstream.request({
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body ?? null,
      signal: ac.signal,
    });
    if (!(request.stream && sink && res.statusCode === 200)) {
      const chunks: Buffer[] = [];
      let first = true;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (first) firstByte();
        else phaseTimer.refresh();
        first = false;
        chunks.push(chunk);
      }
      return { kind: 'response', status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
    }
    framer = new SseFramer(limits.track);
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      const events = framer.push(chunk);
      if (events === '') continue;
      if (!begun) {
        firstByte();
        sink.begin();
        begun = true;
      }
      await sink.write(events);
      phaseTimer.refresh();
    }
    if (framer.done) return { kind: 'streamed' };
    if (!begun)
      return { kind: 'connection-error', code: 'EARLY_EOF', error: 'stream ended before any event' };
    return { kind: 'stream-broken', error: 'stream ended without [DONE]', progress: framer.progress() };
  } catch (err) {
    if (client.aborted) return { kind: 'client-aborted' };
    if (begun && framer) {
      const why = timedOut ? `no chunk for ${limits.idleMs} ms` : describe(err);
      return { kind: 'stream-broken', error: why, progress: framer.progress() };
    }
    if (timedOut) return { kind: 'timeout', phase: timedOut };
    return { kind: 'connection-error', code: errorCode(err), error: describe(err) };
  } finally {
    clearTimeout(phaseTimer);
    clearTimeout(deadlineTimer);
    client.removeEventListener('abort', onClientAbort);
  }
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return typeof e.code === 'string' ? e.code : 'UNKNOWN';
}

function describe(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code === 'UNKNOWN' ? message : `${code}: ${message}`;
}
