import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { z } from 'zod';

/**
 * Fault switches of the stand-in replica, set at run time over `POST /admin/faults` (merged into the
 * current ones; `{"reset": true}` clears them first).
 */
export const faultsSchema = z
  .object({
    /** Answer 500 to every inference request. */
    fail: z.boolean().optional(),
    /** Extra service time per request (ms). */
    slowMs: z.number().int().min(0).optional(),
    /** Never answer (until the client gives up). */
    hang: z.boolean().optional(),
    /** Answer the out-of-memory error llama.cpp gives. */
    oom: z.boolean().optional(),
    /** Destroy the socket after this many stream events (0: before any). */
    dieAfterChunks: z.number().int().min(0).optional(),
    /** Stop sending after this many stream events and keep the connection open (a stalled replica). */
    stallAfterChunks: z.number().int().min(0).optional(),
    /** Answer 503 "Loading model" on every route, /health included. */
    loading: z.boolean().optional(),
    /** Answer 429 with Retry-After. */
    rateLimited: z.boolean().optional(),
    /** Answer 400 (a client error). */
    badRequest: z.boolean().optional(),
    /** Reset the connection without answering. */
    reset: z.boolean().optional(),
    /** `fleetmedic gateway standin` ignores SIGTERM (a process that only SIGKILL stops). */
    ignoreSigterm: z.boolean().optional(),
  })
  .strict();

export type StandinFaults = z.infer<typeof faultsSchema>;

/** What the stand-in saw, from `GET /admin/stats`. */
export interface StandinStats {
  requests: number;
  completed: number;
  /** Requests whose client went away before the answer ended. */
  aborted: number;
  inFlight: number;
  maxInFlight: number;
  health: number;
}

/** Options of the stand-in replica. */
export interface StandinOptions {
  readonly host?: string;
  readonly port?: number;
  /** Service time per request (ms); default 20. */
  readonly serviceMs?: number;
  /** Requests served at once; more wait in a queue. Default 4. */
  readonly concurrency?: number;
  /** Words in an answer when the request gives no max_tokens; default 8. */
  readonly tokens?: number;
  /** Model name in answers. */
  readonly model?: string;
  readonly faults?: StandinFaults;
}

/** A running stand-in replica. */
export interface RunningStandin {
  readonly url: string;
  readonly port: number;
  faults: StandinFaults;
  readonly stats: StandinStats;
  close(): Promise<void>;
}

const OOM_BODY = JSON.stringify({
  error: { code: 500, message: 'CUDA error: out of memory', type: 'server_error' },
});
const LOADING_BODY = JSON.stringify({
  error: { code: 503, message: 'Loading model', type: 'unavailable_error' },
});

/** Word `i` of every answer: answers are deterministic, so a continuation can be checked at the seam. */
export function standinToken(i: number): string {
  return ` w${i}`;
}

/**
 * An OpenAI-compatible stand-in for an inference replica, for tests and benchmarks where a real
 * model server's CPU use would drown the gateway's: a fixed service time, at most `concurrency`
 * requests at once (replica capacity, not the shared CPU, sets saturation), SSE streaming, llama.cpp's
 * `/health`, `/apply-template` and `/completion`, and fault switches. Binds 127.0.0.1.
 */
export async function startStandin(options: StandinOptions = {}): Promise<RunningStandin> {
  const serviceMs = options.serviceMs ?? 20;
  const defaultTokens = options.tokens ?? 8;
  const model = options.model ?? 'standin';
  const queue = new PQueue({ concurrency: options.concurrency ?? 4 });
  const stats: StandinStats = {
    requests: 0,
    completed: 0,
    aborted: 0,
    inFlight: 0,
    maxInFlight: 0,
    health: 0,
  };
  const state: { faults: StandinFaults } = { faults: { ...options.faults } };
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    route(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const body = await readJson(req);
    const faults = state.faults;
    if (path === '/admin/faults' && req.method === 'POST') {
      const { reset, ...switches } = body;
      const parsed = faultsSchema.safeParse(switches);
      if (!parsed.success) return json(res, 400, { error: parsed.error.issues });
      state.faults = reset === true ? parsed.data : { ...state.faults, ...parsed.data };
      return json(res, 200, state.faults);
    }
    if (path === '/admin/stats') return json(res, 200, stats);
    if (faults.loading) return send(res, 503, LOADING_BODY);
    if (path === '/health') {
      stats.health++;
      return json(res, 200, { status: 'ok' });
    }
    if (path === '/v1/models')
      return json(res, 200, { object: 'list', data: [{ id: model, object: 'model' }] });
    if (path === '/apply-template') return json(res, 200, { prompt: renderPrompt(body.messages) });
    const chat = path === '/v1/chat/completions';
    const known = chat || path === '/v1/completions' || path === '/completion';
    if (!known) return json(res, 404, { error: { message: `no route ${path}`, type: 'not_found' } });
    stats.requests++;
    res.once('close', () => {
      if (res.writableFinished) stats.completed++;
      else stats.aborted++;
    });
    await queue.add(async () => {
      if (res.destroyed) return;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        await serve(path, body, req, res, state.faults);
      } finally {
        stats.inFlight--;
      }
    });
  }

  async function serve(
    path: string,
    body: Record<string, unknown>,
    req: IncomingMessage,
    res: ServerResponse,
    faults: StandinFaults,
  ): Promise<void> {
    if (faults.reset) {
      req.socket.destroy();
      return;
    }
    if (faults.hang) {
      await new Promise((resolve) => res.once('close', resolve));
      return;
    }
    await sleep(serviceMs + (faults.slowMs ?? 0));
    if (res.destroyed) return;
    if (faults.rateLimited) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: { message: 'rate limited', type: 'rate_limit_error' } }));
      return;
    }
    if (faults.badRequest)
      return json(res, 400, { error: { message: 'bad request', type: 'invalid_request_error' } });
    if (faults.oom) return send(res, 500, OOM_BODY);
    if (faults.fail) return json(res, 500, { error: { message: 'internal failure', type: 'server_error' } });
    const max = typeof body.max_tokens === 'number' ? body.max_tokens : defaultTokens;
    if (path === '/completion') return completion(body, req, res, faults);
    const words = Array.from({ length: max }, (_, i) => standinToken(i));
    const id = `chatcmpl-standin-${Math.random().toString(36).slice(2, 10)}`;
    const created = Math.floor(Date.now() / 1000);
    const chat = path === '/v1/chat/completions';
    if (body.stream !== true) {
      const text = words.join('');
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' }
        : { index: 0, text, finish_reason: 'length' };
      return json(res, 200, {
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        created,
        model,
        choices: [choice],
        usage: { prompt_tokens: 1, completion_tokens: max, total_tokens: max + 1 },
      });
    }
    const event = (delta: string | undefined, finish: string | null) =>
      `data: ${JSON.stringify({
        id,
        object: chat ? 'chat.completion.chunk' : 'text_completion',
        created,
        model,
        choices: [
          chat
            ? { index: 0, delta: delta === undefined ? {} : { content: delta }, finish_reason: finish }
            : { index: 0, text: delta ?? '', finish_reason: finish },
        ],
      })}\n\n`;
    const events = [...words.map((w) => event(w, null)), event(undefined, 'length'), 'data: [DONE]\n\n'];
    await streamEvents(req, res, events, faults);
  }

  /** llama.cpp's raw `/completion`: continues the words already in the prompt. */
  async function completion(
    body: Record<string, unknown>,
    req: IncomingMessage,
    res: ServerResponse,
    faults: StandinFaults,
  ): Promise<void> {
    const prompt = typeof body.prompt === 'string' ? body.prompt : '';
    const seen = [...prompt.matchAll(/ w(\d+)/g)].map((m) => Number(m[1]));
    const from = seen.length === 0 ? 0 : Math.max(...seen) + 1;
    const n =
      typeof body.n_predict === 'number' && body.n_predict >= 0 ? body.n_predict : defaultTokens - from;
    const words = Array.from({ length: Math.max(0, n) }, (_, i) => standinToken(from + i));
    const events = [
      ...words.map((w) => `data: ${JSON.stringify({ content: w, stop: false })}\n\n`),
      `data: ${JSON.stringify({ content: '', stop: true, stop_type: 'limit' })}\n\n`,
    ];
    await streamEvents(req, res, events, faults);
  }

  async function streamEvents(
    req: IncomingMessage,
    res: ServerResponse,
    events: string[],
    faults: StandinFaults,
  ): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (let i = 0; i < events.length; i++) {
      if (faults.dieAfterChunks !== undefined && i >= faults.dieAfterChunks) {
        req.socket.destroy();
        return;
      }
      if (faults.stallAfterChunks !== undefined && i >= faults.stallAfterChunks) {
        // Silent until the client goes away; nothing more is written.
        await new Promise<void>((resolve) => res.once('close', resolve));
        return;
      }
      if (res.destroyed) return;
      res.write(events[i]);
      await sleep(1);
    }
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get faults() {
      return state.faults;
    },
    set faults(next: StandinFaults) {
      state.faults = next;
    },
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A stand-in for a chat template: role tags around each message, then the assistant's tag. */
function renderPrompt(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as { role?: string; content?: string }[]) : [];
  return `${list.map((m) => `<|${m.role ?? 'user'}|>${m.content ?? ''}`).join('')}<|assistant|>`;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  if (chunks.length === 0) return {};
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body));
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}
