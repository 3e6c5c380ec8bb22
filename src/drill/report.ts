import type { ContinuitySummary } from './continuity.js';
import type { ProbeRecord } from './probe-record.js';

/** Version of the report's JSON; a change that readers must know about raises it. */
export const REPORT_SCHEMA_VERSION = 1;

/** The drill's fault injections, each with its own measured window. */
export type DrillPhaseName = 'steady-state' | 'pod-delete' | 'eviction' | 'gateway-eviction';

/** Recovery steps after an injection, in the order they normally happen. */
export const RECOVERY_STEPS = [
  'eviction',
  'replacement-created',
  'scheduled',
  'checkpoint-restored',
  'health-200',
  'slot-restored',
  'ready',
  'first-token',
  'all-ready',
] as const;

/** One of {@link RECOVERY_STEPS}. */
export type RecoveryStepName = (typeof RECOVERY_STEPS)[number];

/** When a recovery step was observed (epoch ms). */
export interface RecoveryStep {
  readonly step: RecoveryStepName;
  readonly at: number;
  /** What the step was about: the pod, the node, the checkpoint used. */
  readonly detail?: string;
}

/** One injected fault and what followed it. */
export interface DrillPhase {
  readonly name: DrillPhaseName;
  /** When the fault was injected (epoch ms). */
  readonly injectedAt: number;
  readonly recovery: readonly RecoveryStep[];
  /** How long the checkpoint restore took (eviction), as the replica measured it. */
  readonly restoreMs?: number;
  /** What the probe saw in the phase's window (injection to all replicas Ready + 10 s). */
  readonly continuity: ContinuitySummary;
}

/** One preflight check of the Deployment and the cluster; a failed one fails the verdict. */
export interface PreflightFinding {
  /** Short name of the check, e.g. `pdb`, `anti-affinity`, `schedulable-nodes`. */
  readonly check: string;
  readonly ok: boolean;
  /** The finding in words; for a failed check, the verdict's reason ("no PDB"). */
  readonly detail: string;
}

/** What a drill must achieve to pass. */
export interface DrillThresholds {
  /** Phases judged on continuity (and that must have run). */
  readonly phases: readonly DrillPhaseName[];
  /** Minimum continuity of non-streamed requests in each judged phase. */
  readonly nonStreamedContinuity: number;
  /** Minimum continuity of streams in each judged phase. */
  readonly streamContinuity: number;
  /** Eviction recovery (to the replacement Ready) may exceed the checkpoint restore by this much. */
  readonly evictionRecoveryOverRestoreMs: number;
  /** A coverage gap longer than this in a judged phase fails: the probe did not measure it. */
  readonly maxCoverageGapMs: number;
}

/** The goals: 1.0 non-streamed and 0.99 streams through pod deletion and eviction. */
export const DEFAULT_THRESHOLDS: DrillThresholds = Object.freeze({
  phases: Object.freeze(['pod-delete', 'eviction'] as const),
  nonStreamedContinuity: 1,
  streamContinuity: 0.99,
  evictionRecoveryOverRestoreMs: 5_000,
  maxCoverageGapMs: 1_000,
});

/** Pass or fail, and every reason for a failure. */
export interface Verdict {
  readonly pass: boolean;
  readonly reasons: readonly string[];
}

/** Why and when a drill stopped early (its watchdog, or the fleet budget refused its drain). */
export interface DrillAbort {
  readonly reason: string;
  /** The stage it was in (`pod-delete`, `eviction`, ...). */
  readonly stage: string;
  /** Epoch ms. */
  readonly at: number;
}

/** A finished drill, as stored in `<drill id>.json`. */
export interface DrillReport {
  readonly schemaVersion: typeof REPORT_SCHEMA_VERSION;
  readonly drillId: string;
  readonly deployment: { readonly namespace: string; readonly name: string };
  readonly clusterId: string;
  /** Epoch ms. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly phases: readonly DrillPhase[];
  readonly thresholds: DrillThresholds;
  readonly verdict: Verdict;
  readonly preflight: readonly PreflightFinding[];
  /** The probe's JSONL file, one line per request. */
  readonly probeFile: string;
  /** Set when the drill was aborted and rolled back before its end: it fails. */
  readonly aborted?: DrillAbort;
}

/** What {@link createReport} takes: the report without the fields it derives. */
export type DrillReportInput = Omit<DrillReport, 'schemaVersion' | 'verdict' | 'thresholds'> & {
  readonly thresholds?: DrillThresholds;
};

/** When `step` happened in `phase`, if it did (the first time). */
export function stepAt(phase: DrillPhase, step: RecoveryStepName): number | undefined {
  return phase.recovery.find((r) => r.step === step)?.at;
}

/**
 * The phase's recovery time: from the injection to its replacement's Ready (`ready`, else
 * `all-ready`); null when neither was observed.
 */
export function recoveryMs(phase: DrillPhase): number | null {
  const at = stepAt(phase, 'ready') ?? stepAt(phase, 'all-ready');
  return at === undefined ? null : at - phase.injectedAt;
}

/** A ratio as the report prints it: at least two decimals, at most four (`0.97`, `0.9743`, `1.00`). */
export function formatRatio(value: number | null): string {
  if (value === null) return 'n/a';
  const fixed = value.toFixed(4).replace(/0{1,2}$/, '');
  return fixed;
}

/** A duration as the report prints it: `850 ms`, `12.3 s`. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'n/a';
  return Math.abs(ms) < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Applies the thresholds: an abort (first), every failed preflight finding, every judged phase that did not run, has
 * no request of a kind, falls below a continuity threshold or has a coverage gap too long, and an
 * eviction that recovered too slowly (or whose recovery or restore time is unknown: fail safe) is a
 * reason; the drill passes with none. Pure.
 *
 * @example judgeDrill({ phases, preflight, thresholds: DEFAULT_THRESHOLDS }).reasons
 *   // ['no PDB', 'non-streamed continuity 0.97 < 1.00 during eviction']
 */
export function judgeDrill(input: {
  phases: readonly DrillPhase[];
  preflight: readonly PreflightFinding[];
  thresholds: DrillThresholds;
  aborted?: DrillAbort;
}): Verdict {
  const { thresholds: th } = input;
  const reasons = input.aborted ? [`aborted during ${input.aborted.stage}: ${input.aborted.reason}`] : [];
  reasons.push(...input.preflight.filter((f) => !f.ok).map((f) => f.detail));
  for (const name of th.phases) {
    const phase = input.phases.find((p) => p.name === name);
    if (!phase) {
      reasons.push(`the ${name} phase did not run`);
      continue;
    }
    const c = phase.continuity;
    const kinds = [
      ['non-streamed', c.nonStreamed.continuity, th.nonStreamedContinuity],
      ['stream', c.streams.continuity, th.streamContinuity],
    ] as const;
    for (const [kind, value, min] of kinds) {
      if (value === null) reasons.push(`no ${kind} request measured during ${name}`);
      else if (value < min) {
        reasons.push(`${kind} continuity ${formatRatio(value)} < ${formatRatio(min)} during ${name}`);
      }
    }
    const longest = Math.max(0, ...c.gaps.map((g) => g.ms));
    if (longest > th.maxCoverageGapMs) {
      reasons.push(
        `coverage gap of ${formatMs(longest)} during ${name} (the probe measured nothing; ` +
          `at most ${formatMs(th.maxCoverageGapMs)})`,
      );
    }
    if (name === 'eviction') reasons.push(...evictionReasons(phase, th));
  }
  return { pass: reasons.length === 0, reasons };
}

function evictionReasons(phase: DrillPhase, th: DrillThresholds): string[] {
  const recovery = recoveryMs(phase);
  if (recovery === null) return ['eviction: the replacement never became Ready'];
  if (phase.restoreMs === undefined) return ['eviction: no checkpoint restore time was measured'];
  const limit = phase.restoreMs + th.evictionRecoveryOverRestoreMs;
  if (recovery <= limit) return [];
  return [
    `eviction recovery ${formatMs(recovery)} > checkpoint restore ${formatMs(phase.restoreMs)} + ` +
      `${formatMs(th.evictionRecoveryOverRestoreMs)}`,
  ];
}

/** Builds the report, its verdict decided once here by {@link judgeDrill}. */
export function createReport(input: DrillReportInput): DrillReport {
  const thresholds = input.thresholds ?? DEFAULT_THRESHOLDS;
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    drillId: input.drillId,
    deployment: { namespace: input.deployment.namespace, name: input.deployment.name },
    clusterId: input.clusterId,
    startedAt: input.startedAt,
    endedAt: input.endedAt,
    phases: input.phases,
    thresholds,
    verdict: judgeDrill({
      phases: input.phases,
      preflight: input.preflight,
      thresholds,
      ...(input.aborted && { aborted: input.aborted }),
    }),
    preflight: input.preflight,
    probeFile: input.probeFile,
    ...(input.aborted && { aborted: input.aborted }),
  };
}

/** A figure now and in the previous drill. */
export interface Delta {
  readonly now: number | null;
  readonly before: number | null;
  /** now - before; null when either is unknown. */
  readonly delta: number | null;
}

/** The deltas of one phase against the previous drill's phase of the same name. */
export interface PhaseComparison {
  readonly name: DrillPhaseName;
  readonly continuity: Delta;
  readonly nonStreamedContinuity: Delta;
  readonly streamContinuity: Delta;
  readonly longestOutageMs: Delta;
  readonly recoveryMs: Delta;
  readonly restoreMs: Delta;
}

/** The current drill against the previous one of the same Deployment. */
export interface ReportComparison {
  readonly previousId: string;
  readonly previousStartedAt: number;
  readonly previousPass: boolean;
  readonly phases: readonly PhaseComparison[];
}

function delta(now: number | null | undefined, before: number | null | undefined): Delta {
  const n = now ?? null;
  const b = before ?? null;
  return { now: n, before: b, delta: n === null || b === null ? null : n - b };
}

/** The deltas of every phase of `current` (a phase the previous drill lacks has `before: null`). */
export function compareReports(current: DrillReport, previous: DrillReport): ReportComparison {
  return {
    previousId: previous.drillId,
    previousStartedAt: previous.startedAt,
    previousPass: previous.verdict.pass,
    phases: current.phases.map((p) => {
      const q = previous.phases.find((x) => x.name === p.name);
      return {
        name: p.name,
        continuity: delta(p.continuity.continuity, q?.continuity.continuity),
        nonStreamedContinuity: delta(
          p.continuity.nonStreamed.continuity,
          q?.continuity.nonStreamed.continuity,
        ),
        streamContinuity: delta(p.continuity.streams.continuity, q?.continuity.streams.continuity),
        longestOutageMs: delta(
          p.continuity.longestOutage?.ms ?? 0,
          q && (q.continuity.longestOutage?.ms ?? 0),
        ),
        recoveryMs: delta(recoveryMs(p), q && recoveryMs(q)),
        restoreMs: delta(p.restoreMs, q?.restoreMs),
      };
    }),
  };
}

/** The report as stable JSON (fixed key order from {@link createReport}, two-space indent). */
export function renderJson(report: DrillReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** What the renderers show beside the report. */
export interface RenderContext {
  /** The previous drill's deltas. */
  readonly comparison?: ReportComparison;
  /** Report files skipped while looking for the previous drill. */
  readonly skipped?: readonly { file: string; reason: string }[];
  /** The probe's records, plotted on the HTML page's timeline. */
  readonly records?: readonly ProbeRecord[];
}
