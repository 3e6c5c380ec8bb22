import { z } from 'zod';

/**
 * One line of the probe's JSONL file: one request the probe sent, or one it could not send on time.
 *
 * Every time is epoch milliseconds; every duration is milliseconds.
 */
export interface ProbeRecord {
  /** When the request started (or was due, for a `gap` record). */
  readonly t: number;
  /** True for `stream: true` (SSE) requests. */
  readonly stream: boolean;
  /** HTTP status; 0 when no answer came (connection refused, reset, timeout before the headers). */
  readonly status: number;
  /**
   * 2xx with a complete body: for a non-streamed request, a JSON completion with a `finish_reason`;
   * for a stream, a `finish_reason` and `data: [DONE]` seen, and no error event.
   */
  readonly ok: boolean;
  /** From the start to the end of the body (or to the failure). */
  readonly latencyMs: number;
  /** Streams: from the start to the first chunk with content; null for non-streamed requests or none. */
  readonly ttftMs: number | null;
  /** Completion tokens: the answer's `usage.completion_tokens`, else the stream's content chunks. */
  readonly tokens: number;
  /** `tokens` per second of `latencyMs`; null with no token. */
  readonly tokensPerS: number | null;
  /** The `x-fleetmedic-replica` header (the replica that answered, or `fallback`); null without one. */
  readonly replica: string | null;
  /** True when the answer carried an `x-fleetmedic-fallback` header. */
  readonly fallback: boolean;
  /** The `x-fleetmedic-attempts` header; null without one. */
  readonly attempts: number | null;
  /** Why the request was not ok, when the probe can say (status and error body, broken stream...). */
  readonly error?: string;
  /**
   * A coverage gap, not a request: it was due at `t` but the probe could not start it on time (the
   * in-flight cap was reached, or the probe's own timer ran late). Never a success or a failure.
   */
  readonly gap?: true;
  /** Cut by the probe's own stop (still in flight after the grace period): the target was not judged. */
  readonly stopped?: true;
}

const recordSchema = z.object({
  t: z.number(),
  stream: z.boolean(),
  status: z.number().int(),
  ok: z.boolean(),
  latencyMs: z.number(),
  ttftMs: z.number().nullable(),
  tokens: z.number(),
  tokensPerS: z.number().nullable(),
  replica: z.string().nullable(),
  fallback: z.boolean(),
  attempts: z.number().nullable(),
  error: z.string().optional(),
  gap: z.literal(true).optional(),
  stopped: z.literal(true).optional(),
});

/** The result of {@link parseProbeRecords}: the records, and the lines that were not records. */
export interface ParsedProbeFile {
  readonly records: ProbeRecord[];
  /** 1-based line numbers and why each was skipped (a crash can leave a half last line). */
  readonly skipped: { line: number; reason: string }[];
}

/**
 * Parses the probe's JSONL text. A line that is not a record (a truncated last line after a crash,
 * stray text) is skipped and listed, never fatal: the rest of the measurement stays usable.
 *
 * @example parseProbeRecords(await readFile('probe.jsonl', 'utf8')).records.length
 */
export function parseProbeRecords(text: string): ParsedProbeFile {
  const records: ProbeRecord[] = [];
  const skipped: { line: number; reason: string }[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      skipped.push({ line: i + 1, reason: 'not JSON' });
      return;
    }
    const parsed = recordSchema.safeParse(value);
    if (parsed.success) records.push(parsed.data);
    else {
      const issue = parsed.error.issues[0];
      skipped.push({ line: i + 1, reason: `${issue?.path.join('.') || 'record'}: ${issue?.message}` });
    }
  });
  return { records, skipped };
}
