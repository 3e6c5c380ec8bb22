/**
 * The drill workflow's messages: its input, result and progress query, shared by the workflow, the
 * activities and the CLI. Callers name the workflow by {@link DRILL_WORKFLOW}.
 */
import { defineQuery } from '@temporalio/workflow';
import type { DrillThresholds, RecoveryStep } from '../drill/report.js';
import { FailureType } from '../errors.js';
import { DRILL_OWNER_PREFIX } from '../k8s/remediation-labels.js';

/** The workflow type of a resilience drill (its workflow ID: {@link drillWorkflowId}). */
export const DRILL_WORKFLOW = 'drillWorkflow';

/** One drill per ID and cluster; two clusters may share a Temporal namespace. */
export function drillWorkflowId(clusterId: string, drillId: string): string {
  return `drill/${clusterId}/${drillId}`;
}

/** The owner written into the ownership record of the nodes a drill cordons. */
export function drillOwner(drillId: string): string {
  return `${DRILL_OWNER_PREFIX}${drillId}`;
}

/**
 * Failure types of the drill's activities and workflow, by their drill names: the values are
 * FailureType's (src/errors.ts, the one taxonomy). Histories record them: a value never changes.
 */
export const DrillFailureType = {
  /** The replacement of a disrupted replica did not turn Ready in time. */
  RecoveryTimeout: FailureType.DrillRecoveryTimeout,
  /** The object is not one this drill created (restore never deletes it). */
  NotDrillObject: FailureType.NotDrillObject,
  /** The drill's own deadline passed; it rolled back. */
  DeadlineExceeded: FailureType.DrillDeadlineExceeded,
  /** The probe process could not be started or did not write. */
  ProbeFailed: FailureType.DrillProbeFailed,
  /** The node of the replica to evict is already cordoned or not Ready. */
  NodeNotSchedulable: FailureType.NodeNotSchedulable,
} as const;

/** A drill ID: a label value and a file name (letters, digits, `-`, `_`, `.`; 1-63 characters). */
export const DRILL_ID_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;

export interface DrillInput {
  readonly clusterId: string;
  readonly drillId: string;
  readonly namespace: string;
  /** The inference Deployment the drill disrupts. */
  readonly deployment: string;
  /** Create a stand-in Deployment, PDB and Service of that name (removed at the end unless `keep`). */
  readonly standin?: { readonly replicas?: number; readonly serviceMs?: number };
  /** Where the probe sends its requests: the gateway in front of the Deployment. */
  readonly targetUrl: string;
  /**
   * The gateway's own Deployment, when it runs in pods behind the Service that `targetUrl` reaches:
   * after the node eviction, one of its pods is evicted too (through the Eviction API: its PDB
   * decides), phase `gateway-eviction`, judged on continuity like the others. Removed at the end,
   * with its PDB, when it carries the drill's label and the drill removes what it created.
   */
  readonly gateway?: { readonly deployment: string; readonly namespace?: string };
  /** Probe requests per second (default 20) and share streamed (default 0.5). */
  readonly probe?: { readonly rate?: number; readonly streamShare?: number };
  /** Leave what the drill created in place. */
  readonly keep?: boolean;
  /**
   * The eviction's drain may evict pods with emptyDir volumes, whose data is lost (the remediation's
   * `deleteEmptyDirData`). Default: only for the Deployment the drill created (`standin`), whose
   * replicas restore from their checkpoint store; a Deployment of the user's is refused without it.
   */
  readonly deleteEmptyDirData?: boolean;
  /**
   * Whether the eviction phase may cordon and drain the replica's node. `false` (a real cluster
   * without `--drain-node`): it evicts only the Deployment's pods on that node and neither cordons
   * nor drains it. Absent: `true` (runs started before the field); `fleetmedic drill` always sets it.
   */
  readonly drainNode?: boolean;
  /** The drill's own deadline: past it the drill rolls back and fails (default 900 s). */
  readonly deadlineSeconds?: number;
  /** Length of each steady-state window (default 5 s). */
  readonly steadyMs?: number;
  /** Measured past all replicas Ready (default 10 s, the definition of the window). */
  readonly tailMs?: number;
  /** A replacement not Ready within this fails the phase (default 120 s). */
  readonly recoveryTimeoutSeconds?: number;
  /** Overrides of the verdict's thresholds (default `DEFAULT_THRESHOLDS`, the goals). */
  readonly thresholds?: Partial<DrillThresholds>;
  /**
   * The continuity watchdog (src/drill/watchdog.ts): the drill aborts and rolls back as soon as
   * continuity over the last `windowMs` (default 10 s, at least `minRequests`, default 10) falls
   * below `abortBelow` (default 0.5; 0 turns the watchdog off).
   */
  readonly watchdog?: {
    readonly abortBelow?: number;
    readonly windowMs?: number;
    readonly minRequests?: number;
  };
}

/** A phase as the workflow records it: the injection, the recovery steps and its measured window. */
export interface DrillPhaseRecord {
  readonly name: 'steady-state' | 'pod-delete' | 'eviction' | 'gateway-eviction';
  readonly injectedAt: number;
  readonly recovery: readonly RecoveryStep[];
  readonly window: { readonly from: number; readonly to: number };
  /** What was disrupted: the pod, or the node and its pod. */
  readonly target?: string;
  readonly restoreMs?: number;
}

/** The figures of one phase, as the report computed them. */
export interface DrillPhaseFigures {
  readonly name: string;
  readonly requests: number;
  readonly failed: number;
  readonly degraded: number;
  readonly continuity: number | null;
  readonly nonStreamedContinuity: number | null;
  readonly streamContinuity: number | null;
  readonly longestOutageMs: number | null;
  readonly gapMs: number;
  /** Injection to the replacement's Ready; null without one. */
  readonly recoveryMs: number | null;
}

/** What the report activity wrote. */
export interface DrillReportFiles {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
}

/** What restore did. */
export interface DrillRestoreResult {
  /** Nodes whose drill cordon this restore removed. */
  readonly uncordoned: readonly string[];
  /** Nodes the drill cordoned whose record now names another owner (a remediation took them over). */
  readonly leftToOthers: readonly string[];
  /** Objects deleted (`Deployment ns/name`, ...). */
  readonly deleted: readonly string[];
}

export interface DrillResult {
  readonly drillId: string;
  readonly pass: boolean;
  readonly reasons: readonly string[];
  /** True when the preflight refused the drill: nothing was injected. */
  readonly refused: boolean;
  readonly phases: readonly DrillPhaseFigures[];
  readonly report: DrillReportFiles;
  readonly restore: DrillRestoreResult | null;
  /** Why the drill stopped early and rolled back (its watchdog, the fleet budget), when it did. */
  readonly aborted?: string;
}

/** Where a drill is. */
export type DrillStage =
  | 'preflight'
  | 'apply'
  | 'steady-state'
  | 'pod-delete'
  | 'eviction'
  | 'gateway-eviction'
  | 'restore'
  | 'report'
  | 'done'
  | 'rolling-back';

export interface DrillProgress {
  readonly drillId: string;
  readonly stage: DrillStage;
  readonly startedAt: number;
  /** The phases measured so far (their figures come with the report). */
  readonly phases: readonly DrillPhaseRecord[];
  /** Preflight refusal reasons, when it refused. */
  readonly refusal: readonly string[];
  /** Nodes this drill cordoned and has not released yet. */
  readonly cordoned: readonly string[];
  /** Why the drill is aborting, once it is. */
  readonly aborted?: string;
}

export const drillProgressQuery = defineQuery<DrillProgress>('drillProgress');
