import type { OutcomeCounts } from './continuity.js';
import {
  formatMs,
  formatRatio,
  recoveryMs,
  type Delta,
  type DrillPhase,
  type DrillReport,
  type ReportComparison,
} from './report.js';

/** The report's figures as rows of text, shared by the Markdown and HTML renderers. */
export type Row = readonly string[];

/** An instant as the report prints it: ISO 8601, UTC, milliseconds. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** The header rows of the whole drill. */
export function summaryRows(report: DrillReport): Row[] {
  return [
    ['Drill', report.drillId],
    ['Deployment', `${report.deployment.namespace}/${report.deployment.name}`],
    ['Cluster', report.clusterId],
    ['Started', formatTime(report.startedAt)],
    ['Ended', formatTime(report.endedAt)],
    ['Duration', formatMs(report.endedAt - report.startedAt)],
    ['Probe records', report.probeFile],
  ];
}

/** Header of {@link countRows}. */
export const COUNT_HEADER: Row = ['Requests', 'Count', 'Successful', 'Degraded', 'Failed', 'Continuity'];

/** Requests and continuity of a phase: all, non-streamed, streams. */
export function countRows(phase: DrillPhase): Row[] {
  const row = (label: string, c: OutcomeCounts): Row => [
    label,
    String(c.requests),
    String(c.successful),
    String(c.degraded),
    String(c.failed),
    formatRatio(c.continuity),
  ];
  const c = phase.continuity;
  return [row('all', c), row('non-streamed', c.nonStreamed), row('streams', c.streams)];
}

/** Every other figure of a phase, as label and value. */
export function figureRows(phase: DrillPhase): Row[] {
  const c = phase.continuity;
  const outage = c.longestOutage;
  const longestGap = c.gaps.reduce((m, g) => Math.max(m, g.ms), 0);
  return [
    ['Injected', formatTime(phase.injectedAt)],
    [
      'Window',
      `${formatTime(c.window.from)} to ${formatTime(c.window.to)} (${formatMs(c.window.to - c.window.from)})`,
    ],
    ['SLO', `first token ${formatMs(c.slo.ttftMs)}, total ${formatMs(c.slo.totalMs)}`],
    ['Recovery (to Ready)', formatMs(recoveryMs(phase))],
    ['Checkpoint restore', formatMs(phase.restoreMs)],
    [
      'Longest outage',
      outage
        ? `${formatMs(outage.ms)} (${outage.failed} failed, from ${formatTime(outage.from)}${outage.ongoing ? ', still failing at the window end' : ''})`
        : 'none',
    ],
    ['Latency p50 / p99', `${formatMs(c.latencyMs.p50)} / ${formatMs(c.latencyMs.p99)}`],
    ['Time to first token p50 / p99', `${formatMs(c.ttftMs.p50)} / ${formatMs(c.ttftMs.p99)}`],
    [
      'Coverage gaps',
      c.gaps.length === 0
        ? 'none'
        : `${c.gaps.length}, ${formatMs(c.gapMs)} in all, longest ${formatMs(longestGap)}`,
    ],
    ['Not sent on time (probe)', String(c.unsent)],
    ['Cut by the probe stop', String(c.stopped)],
  ];
}

/** Header of {@link recoveryRows}. */
export const RECOVERY_HEADER: Row = ['Step', 'At', 'After injection', 'Detail'];

/** The recovery steps of a phase, in time order. */
export function recoveryRows(phase: DrillPhase): Row[] {
  return [...phase.recovery]
    .sort((a, b) => a.at - b.at)
    .map((r) => [r.step, formatTime(r.at), formatMs(r.at - phase.injectedAt), r.detail ?? '']);
}

/** Header of {@link comparisonRows}. */
export const COMPARISON_HEADER: Row = ['Phase', 'Figure', 'Previous', 'Now', 'Change'];

function deltaRow(phase: string, label: string, d: Delta, kind: 'ratio' | 'ms'): Row {
  const f = kind === 'ratio' ? formatRatio : formatMs;
  let change = 'n/a';
  if (d.delta !== null) {
    const sign = d.delta > 0 ? '+' : d.delta < 0 ? '-' : '±';
    change = `${sign}${f(Math.abs(d.delta))}`;
  }
  return [phase, label, f(d.before), f(d.now), change];
}

/** The deltas against the previous drill, one row per phase and figure. */
export function comparisonRows(comparison: ReportComparison): Row[] {
  return comparison.phases.flatMap((p) => [
    deltaRow(p.name, 'continuity', p.continuity, 'ratio'),
    deltaRow(p.name, 'non-streamed continuity', p.nonStreamedContinuity, 'ratio'),
    deltaRow(p.name, 'stream continuity', p.streamContinuity, 'ratio'),
    deltaRow(p.name, 'longest outage', p.longestOutageMs, 'ms'),
    deltaRow(p.name, 'recovery (to Ready)', p.recoveryMs, 'ms'),
    deltaRow(p.name, 'checkpoint restore', p.restoreMs, 'ms'),
  ]);
}

/** Header of {@link thresholdRows}. */
export function thresholdRows(report: DrillReport): Row[] {
  const t = report.thresholds;
  return [
    ['Judged phases', t.phases.join(', ')],
    ['Non-streamed continuity', `>= ${formatRatio(t.nonStreamedContinuity)}`],
    ['Stream continuity', `>= ${formatRatio(t.streamContinuity)}`],
    ['Eviction recovery', `<= checkpoint restore + ${formatMs(t.evictionRecoveryOverRestoreMs)}`],
    ['Coverage gap', `<= ${formatMs(t.maxCoverageGapMs)}`],
  ];
}
