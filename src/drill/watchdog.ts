import { classifyRecord, DEFAULT_SLO, type Slo } from './continuity.js';
import type { ProbeRecord } from './probe-record.js';

/** When the drill's continuity watchdog aborts it (see {@link continuityBreach}). */
export interface WatchdogOptions {
  /** Abort when continuity over the sliding window falls below this (0 < abortBelow <= 1). */
  readonly abortBelow: number;
  /** The sliding window: requests started this long before `now` (ms). */
  readonly windowMs: number;
  /** Fewer measured requests in the window than this never abort (the probe just started). */
  readonly minRequests: number;
  /** Default {@link DEFAULT_SLO}: a request slower than it is not successful. */
  readonly slo?: Slo;
  /** Requests started before this are not judged (the watchdog was not armed yet). */
  readonly since?: number;
}

/** The defaults: abort below 0.5 over the last 10 s, judged on at least 10 requests. */
export const DEFAULT_WATCHDOG: Omit<WatchdogOptions, 'slo'> = Object.freeze({
  abortBelow: 0.5,
  windowMs: 10_000,
  minRequests: 10,
});

/** A breach: why the drill must abort now. */
export interface WatchdogBreach {
  /** Continuity over the window (successful / measured). */
  readonly continuity: number;
  readonly requests: number;
  readonly failed: number;
  readonly degraded: number;
  readonly window: { readonly from: number; readonly to: number };
  /** In words, for the report's verdict. */
  readonly detail: string;
}

/**
 * Decides whether the drill's service continuity has dropped below the threshold: the requests the
 * probe started in `[max(now - windowMs, since), now]`, classified as the report classifies them (degraded and
 * failed requests are not successful; `gap` and `stopped` records are not measured), and a breach
 * when at least `minRequests` were measured and successful / measured < `abortBelow`. Pure.
 *
 * @example continuityBreach(records, Date.now(), DEFAULT_WATCHDOG)?.detail
 *   // 'continuity 0.12 < 0.5 over the last 10 s (3 of 25 requests successful, 22 failed)'
 */
export function continuityBreach(
  records: readonly ProbeRecord[],
  now: number,
  options: WatchdogOptions,
): WatchdogBreach | null {
  const from = Math.max(now - options.windowMs, options.since ?? -Infinity);
  let successful = 0;
  let degraded = 0;
  let failed = 0;
  for (const r of records) {
    if (r.t < from || r.t > now) continue;
    const outcome = classifyRecord(r, options.slo ?? DEFAULT_SLO);
    if (outcome === 'successful') successful++;
    else if (outcome === 'degraded') degraded++;
    else if (outcome === 'failed') failed++;
  }
  const requests = successful + degraded + failed;
  if (requests === 0 || requests < options.minRequests) return null;
  const continuity = successful / requests;
  if (continuity >= options.abortBelow) return null;
  return {
    continuity,
    requests,
    failed,
    degraded,
    window: { from, to: now },
    detail:
      `continuity ${continuity.toFixed(2)} < ${options.abortBelow} over the last ${Math.round((now - from) / 100) / 10} s ` +
      `(${successful} of ${requests} requests successful, ${failed} failed, ${degraded} degraded)`,
  };
}
