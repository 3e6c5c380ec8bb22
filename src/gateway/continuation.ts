import type { Dispatcher } from 'undici';
import type { AttemptOutcome, StreamProgress } from './classify.js';

/** What a continuation gets: the original request, what the client already has, where to write. */
export interface ContinueArgs {
  readonly upstream: Dispatcher;
  readonly route: string;
  readonly request: Readonly<Record<string, unknown>>;
  readonly progress: StreamProgress;
  readonly write: (events: string) => Promise<void>;
  readonly limits: { readonly ttfbMs: number; readonly idleMs: number; readonly deadline: number };
  readonly signal: AbortSignal;
}

/**
 * Continues a stream that broke mid-way on another replica, writing events in the original
 * stream's format so the client sees one stream.
 */
export interface StreamContinuer {
  /** Whether this request can be continued at all. */
  supports(route: string, request: Readonly<Record<string, unknown>>): boolean;
  /** Streams the rest; `streamed` when the client got a complete stream. Never throws. */
  continueStream(args: ContinueArgs): Promise<AttemptOutcome>;
}

/** Sampling fields carried from an OpenAI chat request to llama.cpp's `/completion`. */
const CARRIED = ['temperature', 'top_p', 'top_k', 'min_p', 'seed', 'presence_penalty', 'frequency_penalty'];

/**
 * llama.cpp: renders the chat into the model's prompt with `/apply-template`, appends the text the
 * client already has, and generates the rest with `/completion` (raw prompt), carrying sampling,
 * stop sequences and the remaining `max_tokens`. Its events are rewritten as chat completion chunks
 * with the original `id`, `model` and `created`, and the stream ends with one `finish_reason` and
 * `[DONE]`. At temperature 0 the result is what the first replica would have sent.
 */
export class LlamaCppContinuer implements StreamContinuer {
  supports(route: string, request: Readonly<Record<string, unknown>>): boolean {
    return (
      route === '/v1/chat/completions' &&
      request.stream === true &&
      Array.isArray(request.messages) &&
      (request.n === undefined || request.n === 1)
    );
  }

  async continueStream(args: ContinueArgs): Promise<AttemptOutcome> {
    const { upstream, request, progress, signal } = args;
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let timer = setTimeout(() => ac.abort(), Math.min(args.limits.ttfbMs, args.limits.deadline - Date.now()));
    try {
      const template = await upstream.request({
        method: 'POST',
        path: '/apply-template',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: request.messages }),
        signal: ac.signal,
      });
      const rendered = (await template.body.json()) as { prompt?: unknown };
      if (template.statusCode !== 200 || typeof rendered.prompt !== 'string') {
        return {
          kind: 'response',
          status: template.statusCode,
          headers: template.headers,
          body: Buffer.alloc(0),
        };
      }
      const body: Record<string, unknown> = {
        prompt: rendered.prompt + progress.text,
        stream: true,
        n_predict: remainingTokens(request, progress),
      };
      for (const key of CARRIED) if (request[key] !== undefined) body[key] = request[key];
      if (request.stop !== undefined) body.stop = Array.isArray(request.stop) ? request.stop : [request.stop];
      const res = await upstream.request({
        method: 'POST',
        path: '/completion',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: ac.signal,
      });
      if (res.statusCode !== 200) {
        return { kind: 'response', status: res.statusCode, headers: res.headers, body: Buffer.alloc(0) };
      }
      clearTimeout(timer);
      timer = setTimeout(() => ac.abort(), args.limits.idleMs);
      const chunk = chunkWriter(progress);
      let pending = '';
      for await (const piece of res.body as AsyncIterable<Buffer>) {
        timer.refresh();
        pending += piece.toString('utf8');
        let at: number;
        while ((at = pending.indexOf('\n\n')) >= 0) {
          const event = pending.slice(0, at);
          pending = pending.slice(at + 2);
          const data = event.replace(/^data:\s*/, '');
          if (data === '' || data === '[DONE]') continue;
          const parsed = JSON.parse(data) as { content?: string; stop?: boolean; stop_type?: string };
          if (parsed.content) await args.write(chunk({ content: parsed.content }, null));
          if (parsed.stop) {
            await args.write(chunk({}, parsed.stop_type === 'limit' ? 'length' : 'stop'));
            await args.write('data: [DONE]\n\n');
            return { kind: 'streamed' };
          }
        }
      }
      return { kind: 'connection-error', code: 'EARLY_EOF', error: 'continuation ended without a stop' };
    } catch (err) {
      if (signal.aborted) return { kind: 'client-aborted' };
      return { kind: 'connection-error', code: 'CONTINUATION', error: (err as Error).message };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** Tokens left of `max_tokens` (or `max_completion_tokens`); -1 (no limit) when neither is set. */
function remainingTokens(request: Readonly<Record<string, unknown>>, progress: StreamProgress): number {
  const max = request.max_completion_tokens ?? request.max_tokens;
  if (typeof max !== 'number') return -1;
  return Math.max(0, max - progress.tokens);
}

/** Builds chat completion chunk events in the original stream's identity. */
function chunkWriter(progress: StreamProgress) {
  const id = progress.id ?? `chatcmpl-fleetmedic-${Date.now()}`;
  const created = progress.created ?? Math.floor(Date.now() / 1000);
  return (delta: Record<string, unknown>, finish: string | null): string =>
    `data: ${JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model: progress.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    })}\n\n`;
}
