import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { assertLoopbackUrl } from '../k8s/loopback.js';
import { errorMessage, readCompletion, StreamTally, type AnswerReading } from './probe-answer.js';
import type { ProbeRecord } from './probe-record.js';

/** Validated settings of the continuous probe. */
export interface ProbeOptions {
  /** Base URL of an OpenAI-compatible server (the gateway); requests go to `/v1/chat/completions`. */
  readonly targetUrl: string;
  /** Requests started per second, whatever the answers do (open loop). Default 20. */
  readonly rate: number;
  /** Share of `stream: true` requests, 0..1, spread evenly. Default 0.5. */
  readonly streamShare: number;
  /** Stop after this many seconds; undefined: run until stopped. */
  readonly durationS?: number;
  /** `model` of each request. Default `default`. */
  readonly model: string;
  /** `max_tokens` of each request. Default 16. */
  readonly maxTokens: number;
  /** Requests in flight at most; a request due beyond it is a coverage gap. Default rate × 10 s, ≥ 8. */
  readonly maxInFlight: number;
  /** A request still running after this is aborted and fails. Default 30000 ms. */
  readonly timeoutMs: number;
  /** On stop, in-flight requests get this long to finish before they are cut. Default 3000 ms. */
  readonly graceMs: number;
  /** Allow a target outside 127.0.0.0/8 (a real cluster's ingress). */
  readonly anyAddress: boolean;
}

/** What {@link parseProbeOptions} takes: CLI strings or numbers, under the options' names. */
export type ProbeOptionsInput = { readonly targetUrl: string } & {
  readonly [K in Exclude<keyof ProbeOptions, 'targetUrl'>]?: string | number | boolean;
};

const FLAGS: Record<keyof ProbeOptions, string> = {
  targetUrl: '--target-url',
  rate: '--rate',
  streamShare: '--stream-share',
  durationS: '--duration',
  model: '--model',
  maxTokens: '--max-tokens',
  maxInFlight: '--max-in-flight',
  timeoutMs: '--timeout',
  graceMs: '--grace',
  anyAddress: '--any-address',
};

const num = z.coerce.number({ error: 'expected a number' }).refine(Number.isFinite, 'expected a number');
const optionsSchema = z.object({
  targetUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  rate: num.refine((n) => n > 0 && n <= 10_000, 'expected a number above 0, at most 10000').default(20),
  streamShare: num.refine((n) => n >= 0 && n <= 1, 'expected a number from 0 to 1').default(0.5),
  durationS: num.refine((n) => n > 0, 'expected a number of seconds above 0').optional(),
  model: z.string().min(1, 'expected a model name').default('default'),
  maxTokens: num.pipe(z.number().int('expected an integer').min(1).max(100_000)).default(16),
  maxInFlight: num.pipe(z.number().int('expected an integer').min(1).max(100_000)).optional(),
  timeoutMs: num.pipe(z.number().int('expected an integer').min(1)).default(30_000),
  graceMs: num.pipe(z.number().int('expected an integer').min(0)).default(3_000),
  anyAddress: z.boolean().default(false),
});

/**
 * Validates and completes the probe's settings in one place. Refuses a target outside loopback
 * unless `anyAddress`.
 *
 * @throws ConfigError naming the flag, the value received and its type.
 * @throws NonLoopbackAddressError for a non-loopback target without `anyAddress`.
 * @example parseProbeOptions({ targetUrl: 'http://127.0.0.1:8090', rate: '50' }).maxInFlight // 500
 */
export function parseProbeOptions(input: ProbeOptionsInput): ProbeOptions {
  const parsed = optionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path[0] as keyof ProbeOptions;
    const value = (input as Record<string, unknown>)[key];
    throw new ConfigError(
      `${FLAGS[key] ?? String(key)}: ${issue.message}, got ${JSON.stringify(value)} (${typeof value})`,
    );
  }
  const o = parsed.data;
  if (!o.anyAddress) assertLoopbackUrl(o.targetUrl, 'the probe target (--any-address allows any)');
  return Object.freeze({
    ...o,
    targetUrl: o.targetUrl.replace(/\/+$/, ''),
    maxInFlight: o.maxInFlight ?? Math.max(8, Math.ceil(o.rate * 10)),
  });
}

/**
 * Whether request `i` is streamed: spreads `share` evenly (0.5 alternates), so every stretch of the
 * run has its share of streams.
 */
export function streamAt(i: number, share: number): boolean {
  return Math.floor((i + 1) * share) > Math.floor(i * share);
}

/** Where records go as they complete. */
export interface RecordSink {
  write(record: ProbeRecord): void;
  close(): void;
}

/**
 * Appends records to a JSONL file, one synchronous write per record: a crash of the probe loses at
 * most the requests still in flight. Creates the file's directory.
 */
export function jsonlSink(file: string): RecordSink {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a');
  return {
    write: (record) => void fs.writeSync(fd, `${JSON.stringify(record)}\n`),
    close: () => fs.closeSync(fd),
  };
}

/** Epoch milliseconds from a monotonic clock (wall-clock steps do not distort latencies). */
const clock = (): number => performance.timeOrigin + performance.now();
const round1 = (n: number) => Math.round(n * 10) / 10;

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** One request of the probe: what {@link probeOnce} needs. */
export interface ProbeRequest {
  readonly targetUrl: string;
  readonly stream: boolean;
  readonly model: string;
  readonly maxTokens: number;
  readonly timeoutMs: number;
  /** Aborts the request for the probe's stop: the record is marked `stopped`. */
  readonly stop: AbortSignal;
  readonly dispatcher: Dispatcher;
}

/**
 * Sends one chat completion and measures it. Never throws: a refused connection, a timeout, an
 * error status or a broken stream is a record that is not ok, with its `error`.
 */
export async function probeOnce(req: ProbeRequest): Promise<ProbeRecord> {
  const started = clock();
  const timeout = AbortSignal.timeout(req.timeoutMs);
  let status = 0;
  let ttft: number | null = null;
  let marks = { replica: null as string | null, fallback: false, attempts: null as number | null };
  const record = (reading: AnswerReading, extra: Partial<ProbeRecord> = {}): ProbeRecord => {
    const latencyMs = round1(clock() - started);
    const ok = status >= 200 && status <= 299 && reading.complete && reading.error === undefined;
    return {
      t: Math.round(started),
      stream: req.stream,
      status,
      ok,
      latencyMs,
      ttftMs: ttft,
      tokens: reading.tokens,
      tokensPerS: reading.tokens > 0 && latencyMs > 0 ? round1(reading.tokens / (latencyMs / 1000)) : null,
      ...marks,
      ...(!ok && reading.error !== undefined && { error: reading.error }),
      ...extra,
    };
  };
  const tally = new StreamTally();
  let text = '';
  try {
    const res = await request(`${req.targetUrl}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: req.dispatcher,
      signal: AbortSignal.any([req.stop, timeout]),
      headers: {
        'content-type': 'application/json',
        accept: req.stream ? 'text/event-stream' : 'application/json',
      },
      body: JSON.stringify({
        model: req.model,
        messages: [{ role: 'user', content: 'Count slowly from one to ten.' }],
        max_tokens: req.maxTokens,
        stream: req.stream,
      }),
    });
    status = res.statusCode;
    const attempts = Number(header(res.headers, 'x-fleetmedic-attempts'));
    marks = {
      replica: header(res.headers, 'x-fleetmedic-replica') ?? null,
      fallback: header(res.headers, 'x-fleetmedic-fallback') !== undefined,
      attempts: Number.isInteger(attempts) && header(res.headers, 'x-fleetmedic-attempts') ? attempts : null,
    };
    res.body.setEncoding('utf8');
    for await (const piece of res.body as AsyncIterable<string>) {
      if (req.stream && status >= 200 && status <= 299) {
        if (tally.push(piece)) ttft = round1(clock() - started);
      } else text += piece;
    }
    if (status < 200 || status > 299) {
      return record({ complete: false, tokens: 0, error: `HTTP ${status}: ${errorMessage(text)}` });
    }
    return record(req.stream ? tally.end() : readCompletion(text));
  } catch (err) {
    const partial = req.stream ? tally.end().tokens : 0;
    if (req.stop.aborted)
      return record({ complete: false, tokens: partial, error: 'cut by the probe stop' }, { stopped: true });
    const why = timeout.aborted
      ? `timed out after ${req.timeoutMs} ms`
      : `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`;
    const where = status === 0 ? 'before an answer' : `after HTTP ${status}`;
    return record({ complete: false, tokens: partial, error: `${why} (${where})` });
  }
}

/** Counts of one probe run. */
export interface ProbeRunSummary {
  /** Requests sent. */
  readonly sent: number;
  readonly ok: number;
  readonly notOk: number;
  /** Requests due that could not start on time (`gap` records). */
  readonly unsent: number;
  /** Requests cut by the stop after the grace period (`stopped` records). */
  readonly stopped: number;
}

/** What {@link runProbe} needs besides its options. */
export interface ProbeRunDeps {
  readonly sink: RecordSink;
  /** Stops the probe (SIGTERM, SIGINT); the duration stops it too. */
  readonly signal?: AbortSignal;
}

/**
 * The continuous probe: starts `rate` requests per second at fixed times whatever the answers do
 * (open loop), `streamShare` of them streamed, at most `maxInFlight` at once. A request that cannot
 * start on time (the cap reached, or the probe's timer more than two intervals late) is written as a
 * `gap` record, never skipped in silence. Each record is written when its request ends. On stop
 * (signal or duration), no new request starts; those in flight get `graceMs`, then are cut and
 * written as `stopped`. Returns after every record is written; the caller closes the sink.
 *
 * @example await runProbe(parseProbeOptions({ targetUrl }), { sink: jsonlSink('probe.jsonl'), signal })
 */
export async function runProbe(options: ProbeOptions, deps: ProbeRunDeps): Promise<ProbeRunSummary> {
  const stop = new AbortController();
  const cut = new AbortController();
  const onStop = () => stop.abort();
  deps.signal?.addEventListener('abort', onStop, { once: true });
  if (deps.signal?.aborted) stop.abort();
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  const counts = { sent: 0, ok: 0, notOk: 0, unsent: 0, stopped: 0 };
  const inFlight = new Set<Promise<void>>();
  const write = (r: ProbeRecord) => {
    if (r.gap) counts.unsent++;
    else if (r.stopped) counts.stopped++;
    else if (r.ok) counts.ok++;
    else counts.notOk++;
    deps.sink.write(r);
  };
  const interval = 1000 / options.rate;
  const start = clock();
  const end = options.durationS === undefined ? Infinity : start + options.durationS * 1000;
  try {
    for (let i = 0; ; i++) {
      const due = start + i * interval;
      if (due >= end) break;
      const wait = due - clock();
      if (wait > 0) await sleep(wait, undefined, { signal: stop.signal }).catch(() => {});
      if (stop.signal.aborted) break;
      const stream = streamAt(i, options.streamShare);
      const late = clock() - due;
      if (inFlight.size >= options.maxInFlight || late > 2 * interval) {
        const why =
          inFlight.size >= options.maxInFlight
            ? `not sent: ${options.maxInFlight} requests in flight (--max-in-flight)`
            : `not sent: the probe ran ${Math.round(late)} ms late`;
        write(gapRecord(due, stream, why));
        continue;
      }
      counts.sent++;
      const p = probeOnce({ ...options, stream, stop: cut.signal, dispatcher }).then(write);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    if (inFlight.size > 0) {
      await Promise.race([Promise.all(inFlight), sleep(options.graceMs, undefined, { ref: false })]);
    }
    cut.abort();
    await Promise.all(inFlight);
  } finally {
    deps.signal?.removeEventListener('abort', onStop);
    await dispatcher.destroy().catch(() => {});
  }
  return counts;
}

function gapRecord(due: number, stream: boolean, error: string): ProbeRecord {
  return {
    t: Math.round(due),
    stream,
    status: 0,
    ok: false,
    latencyMs: 0,
    ttftMs: null,
    tokens: 0,
    tokensPerS: null,
    replica: null,
    fallback: false,
    attempts: null,
    error,
    gap: true,
  };
}
