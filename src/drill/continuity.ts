import type { ProbeRecord } from './probe-record.js';

/** The service level a request must meet to count as successful. */
export interface Slo {
  /** Time to first token of a stream (ms). */
  readonly ttftMs: number;
  /** Whole request, streamed or not (ms). */
  readonly totalMs: number;
}

/** The SLO: first token within 2 s, whole answer within 10 s. */
export const DEFAULT_SLO: Slo = Object.freeze({ ttftMs: 2_000, totalMs: 10_000 });

/** The probe's default rate (requests/s), from which the expected inter-arrival time follows. */
export const DEFAULT_PROBE_RATE = 20;

/** A closed time interval, epoch ms. */
export interface TimeWindow {
  readonly from: number;
  readonly to: number;
}

/** How one measured request counts. */
export type Outcome = 'successful' | 'degraded' | 'failed';

/** Counts and continuity of one slice of the requests (all, streams, non-streamed). */
export interface OutcomeCounts {
  readonly requests: number;
  readonly successful: number;
  readonly degraded: number;
  readonly failed: number;
  /** successful / (successful + degraded + failed); null when there was no request. */
  readonly continuity: number | null;
}

/** An interval of the window with no request started for longer than twice the expected interval. */
export interface CoverageGap extends TimeWindow {
  readonly ms: number;
}

/** The longest run of requests that all failed. */
export interface Outage extends TimeWindow {
  readonly ms: number;
  /** Failed requests in the run. */
  readonly failed: number;
  /** True when no answer came before the window's end: `to` is the window's end. */
  readonly ongoing: boolean;
}

/** Nearest-rank percentiles; null when there is no sample. */
export interface Percentiles {
  readonly p50: number | null;
  readonly p99: number | null;
}

/** What the probe saw during one window: the continuity figures of the drill report. */
export interface ContinuitySummary extends OutcomeCounts {
  readonly window: TimeWindow;
  readonly slo: Slo;
  readonly expectedIntervalMs: number;
  readonly streams: OutcomeCounts;
  readonly nonStreamed: OutcomeCounts;
  /** Requests due in the window that the probe could not start on time (`gap` records). */
  readonly unsent: number;
  /** Requests cut by the probe's own stop: neither success nor failure. */
  readonly stopped: number;
  readonly gaps: readonly CoverageGap[];
  /** Sum of the gaps' lengths. */
  readonly gapMs: number;
  readonly longestOutage: Outage | null;
  /** Total latency of the answered requests (successful and degraded). */
  readonly latencyMs: Percentiles;
  /** Time to first token of the answered streams. */
  readonly ttftMs: Percentiles;
}

/** Options of {@link summarizeContinuity}. */
export interface ContinuityOptions {
  /** Default {@link DEFAULT_SLO}. */
  readonly slo?: Slo;
  /** 1000 / the probe's rate; default 1000 / {@link DEFAULT_PROBE_RATE} (50 ms). */
  readonly expectedIntervalMs?: number;
}

/** True when the answer came from the fallback model service rather than a primary replica. */
function fromFallback(r: ProbeRecord): boolean {
  return r.fallback || r.replica === 'fallback';
}

/**
 * How one request counts: failed (not 2xx, an error, or a body that did not complete, a stream that
 * broke after its 200 included), degraded (a complete answer, but from the fallback or slower than
 * the SLO), else successful. Undefined for records that are not measured requests (`gap`, `stopped`).
 */
export function classifyRecord(r: ProbeRecord, slo: Slo = DEFAULT_SLO): Outcome | undefined {
  if (r.gap || r.stopped) return undefined;
  if (!r.ok || r.status < 200 || r.status > 299 || r.error !== undefined) return 'failed';
  if (fromFallback(r)) return 'degraded';
  if (r.latencyMs > slo.totalMs) return 'degraded';
  if (r.stream && (r.ttftMs === null || r.ttftMs > slo.ttftMs)) return 'degraded';
  return 'successful';
}

function counts(outcomes: readonly Outcome[]): OutcomeCounts {
  const n = (o: Outcome) => outcomes.filter((x) => x === o).length;
  const successful = n('successful');
  const degraded = n('degraded');
  const failed = n('failed');
  const total = successful + degraded + failed;
  return {
    requests: total,
    successful,
    degraded,
    failed,
    continuity: total === 0 ? null : successful / total,
  };
}

/** Nearest-rank percentile `p` (0..100) of `values`; null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/**
 * Intervals of `window` in which no request started for more than `2 × expectedIntervalMs`,
 * counting the window's edges as starts (a probe that starts late or stops early leaves a gap).
 */
export function coverageGaps(
  starts: readonly number[],
  window: TimeWindow,
  expectedIntervalMs: number,
): CoverageGap[] {
  const points = [window.from, ...starts.filter((t) => t >= window.from && t <= window.to), window.to];
  points.sort((a, b) => a - b);
  const gaps: CoverageGap[] = [];
  for (let i = 1; i < points.length; i++) {
    const from = points[i - 1]!;
    const to = points[i]!;
    if (to - from > 2 * expectedIntervalMs) gaps.push({ from, to, ms: to - from });
  }
  return gaps;
}

/**
 * The longest run of consecutive started requests that all failed: from the first failure's start to
 * the start of the next request that was answered (successful or degraded: the service answered), or
 * to the window's end when none was (`ongoing`). `measured` must be sorted by start.
 */
export function longestOutage(
  measured: readonly { t: number; outcome: Outcome }[],
  windowEnd: number,
): Outage | null {
  let best: Outage | null = null;
  let i = 0;
  while (i < measured.length) {
    if (measured[i]!.outcome !== 'failed') {
      i++;
      continue;
    }
    const from = measured[i]!.t;
    let j = i;
    while (j < measured.length && measured[j]!.outcome === 'failed') j++;
    const ongoing = j === measured.length;
    const to = ongoing ? Math.max(windowEnd, from) : measured[j]!.t;
    const run: Outage = { from, to, ms: to - from, failed: j - i, ongoing };
    if (!best || run.ms > best.ms || (run.ms === best.ms && run.failed > best.failed)) best = run;
    i = j;
  }
  return best;
}

/**
 * Continuity of the service during `window`, from the probe's records: the requests that started in
 * it (`from <= t <= to`), each classified by {@link classifyRecord}; continuity = successful /
 * (successful + degraded + failed), overall, for streams and for non-streamed requests; the probe's
 * coverage gaps (reported, never counted as success); the longest outage; latency and TTFT
 * percentiles. Pure: the same records give the same summary.
 *
 * @example summarizeContinuity(records, { from: injectedAt, to: allReadyAt + 10_000 }).continuity
 */
export function summarizeContinuity(
  records: readonly ProbeRecord[],
  window: TimeWindow,
  options: ContinuityOptions = {},
): ContinuitySummary {
  const slo = options.slo ?? DEFAULT_SLO;
  const expectedIntervalMs = options.expectedIntervalMs ?? 1000 / DEFAULT_PROBE_RATE;
  const inWindow = records.filter((r) => r.t >= window.from && r.t <= window.to);
  const measured = inWindow
    .map((r) => ({ r, t: r.t, outcome: classifyRecord(r, slo) }))
    .filter((m): m is { r: ProbeRecord; t: number; outcome: Outcome } => m.outcome !== undefined)
    .sort((a, b) => a.t - b.t);
  const answered = measured.filter((m) => m.outcome !== 'failed');
  const gaps = coverageGaps(
    inWindow.filter((r) => !r.gap).map((r) => r.t),
    window,
    expectedIntervalMs,
  );
  const latencies = answered.map((m) => m.r.latencyMs);
  const ttfts = answered.filter((m) => m.r.stream && m.r.ttftMs !== null).map((m) => m.r.ttftMs!);
  return {
    window: { from: window.from, to: window.to },
    slo,
    expectedIntervalMs,
    ...counts(measured.map((m) => m.outcome)),
    streams: counts(measured.filter((m) => m.r.stream).map((m) => m.outcome)),
    nonStreamed: counts(measured.filter((m) => !m.r.stream).map((m) => m.outcome)),
    unsent: inWindow.filter((r) => r.gap).length,
    stopped: inWindow.filter((r) => !r.gap && r.stopped).length,
    gaps,
    gapMs: gaps.reduce((sum, g) => sum + g.ms, 0),
    longestOutage: longestOutage(measured, window.to),
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    ttftMs: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
  };
}
