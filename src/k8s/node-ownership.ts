import type { V1Node, V1Pod, V1Taint } from '@kubernetes/client-node';
import { FailureType } from '../errors.js';
import { isDaemonSetPod, isTerminating } from './drain-plan.js';
import { GPU_RESOURCE } from './labels.js';
import { quantityOrZero } from './quantity.js';
import {
  CORDON_ANNOTATION,
  DRILL_OWNER_PREFIX,
  MAX_REMEDIATION_RECORDS,
  QUARANTINED_LABEL,
  QUARANTINE_TAINT_EFFECT,
  QUARANTINE_TAINT_KEY,
  REMEDIATIONS_ANNOTATION,
} from './remediation-labels.js';
import { readAnnotationJson } from './annotation-json.js';

/**
 * Who quarantined a node, stored as JSON in the `fleetmedic.io/cordon` annotation. `preexistingCordon`
 * is true when the node was already cordoned (by an operator, another tool, a cluster autoscaler)
 * before fleetmedic quarantined it: fleetmedic then never uncordons it, it only removes its own marks.
 */
export interface CordonRecord {
  workflowId: string;
  /**
   * The run that quarantined the node, or that took the quarantine over from an earlier run of the
   * same workflow ID (every run of a node shares it). Absent in records written before runs were named.
   */
  runId?: string;
  reason: string;
  /** ISO-8601 time of the quarantine. */
  at: string;
  preexistingCordon: boolean;
}

/** A taint as plain JSON (client-node deserialises `timeAdded` into a Date). */
export interface PlainTaint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

/**
 * A JSON merge patch of a node. `metadata.resourceVersion` makes it an optimistic update: the API
 * server answers 409 Conflict when the node changed since it was read, and the caller reads again
 * (Temporal retries the activity). Merge patch replaces `spec.taints` as a whole, which is why the
 * list is computed from the version read; `null` removes a label, an annotation or the taint list.
 */
export interface NodeMergePatch {
  metadata: {
    resourceVersion: string;
    labels?: Record<string, string | null>;
    annotations?: Record<string, string | null>;
  };
  spec?: { unschedulable?: boolean; taints?: PlainTaint[] | null };
}

/** The result of reading an ownership annotation. */
export type ParsedCordon =
  { kind: 'absent' } | { kind: 'ok'; record: CordonRecord } | { kind: 'invalid'; raw: string; error: string };

/** Reads the `fleetmedic.io/cordon` annotation value, refusing anything that is not a complete record. */
export function parseCordonRecord(annotation: string | undefined): ParsedCordon {
  const read = readAnnotationJson(annotation);
  if (read.kind !== 'json') return read;
  const { value, raw } = read;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', raw, error: 'not a JSON object' };
  }
  const v = value as Record<string, unknown>;
  if (typeof v.workflowId !== 'string' || v.workflowId === '') {
    return { kind: 'invalid', raw, error: 'workflowId missing or not a non-empty string' };
  }
  if (typeof v.preexistingCordon !== 'boolean') {
    return { kind: 'invalid', raw, error: 'preexistingCordon missing or not a boolean' };
  }
  if (v.runId !== undefined && (typeof v.runId !== 'string' || v.runId === '')) {
    return { kind: 'invalid', raw, error: 'runId not a non-empty string' };
  }
  return {
    kind: 'ok',
    record: {
      workflowId: v.workflowId,
      ...(v.runId !== undefined && { runId: v.runId }),
      reason: typeof v.reason === 'string' ? v.reason : '',
      at: typeof v.at === 'string' ? v.at : '',
      preexistingCordon: v.preexistingCordon,
    },
  };
}

/** The annotation value for a record (stable key order, so an unchanged record is an unchanged string). */
export function formatCordonRecord(record: CordonRecord): string {
  return JSON.stringify({
    workflowId: record.workflowId,
    ...(record.runId !== undefined && { runId: record.runId }),
    reason: record.reason,
    at: record.at,
    preexistingCordon: record.preexistingCordon,
  });
}

/** A taint as plain JSON, keeping `timeAdded` (NoExecute taints' toleration clocks depend on it). */
export function plainTaint(taint: V1Taint): PlainTaint {
  const out: PlainTaint = { key: taint.key, effect: taint.effect };
  if (taint.value !== undefined && taint.value !== '') out.value = taint.value;
  if (taint.timeAdded !== undefined) out.timeAdded = kubeTime(taint.timeAdded);
  return out;
}

/** RFC 3339 to the second, as the API server writes times. */
function kubeTime(value: Date | string): string {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** fleetmedic's quarantine taint: NoSchedule, never NoExecute. */
export const QUARANTINE_TAINT: Readonly<PlainTaint> = Object.freeze({
  key: QUARANTINE_TAINT_KEY,
  effect: QUARANTINE_TAINT_EFFECT,
});

function hasQuarantineTaint(node: V1Node): boolean {
  return (node.spec?.taints ?? []).some(
    (t) => t.key === QUARANTINE_TAINT_KEY && t.effect === QUARANTINE_TAINT_EFFECT,
  );
}

function resourceVersionOf(node: V1Node): string {
  const rv = node.metadata?.resourceVersion;
  // Every node read from the API server has one; without it the update would not be optimistic.
  if (!rv) throw new Error(`node ${node.metadata?.name ?? '?'} has no resourceVersion`);
  return rv;
}

/** What {@link planQuarantine} decided. */
export type QuarantinePlan =
  | { action: 'noop'; record: CordonRecord }
  | { action: 'patch'; record: CordonRecord; patch: NodeMergePatch }
  | {
      action: 'refuse';
      reason: typeof FailureType.QuarantinedByOther | typeof FailureType.InvalidAnnotation;
      message: string;
    };

/**
 * Decides how to quarantine `node` for `workflowId`: the quarantine label, the NoSchedule taint, a
 * cordon and the ownership record, in one patch. A node this workflow already quarantined gets only
 * what is missing (nothing when all is there), keeping the original record, so a retried or repeated
 * call is a no-op. A node already cordoned without a fleetmedic record is recorded with
 * `preexistingCordon: true`. A node another workflow quarantined, or whose record cannot be read, is
 * refused: taking it over could uncordon a node its owner still needs out of service. A record of an
 * earlier run of the same workflow ID is taken over by `runId` (only one run of an ID is open at a
 * time), keeping its reason, time and `preexistingCordon`. A drill's record (`drill/<id>`) is taken
 * over by any workflow that is not a drill: a new record, keeping the drill's `preexistingCordon`.
 *
 * @param now ISO time written into a new record.
 */
export function planQuarantine(
  node: V1Node,
  input: { workflowId: string; runId?: string; reason: string; now: string },
): QuarantinePlan {
  const name = node.metadata?.name ?? '?';
  const parsed = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
  if (parsed.kind === 'invalid') {
    return {
      action: 'refuse',
      reason: FailureType.InvalidAnnotation,
      message: `node ${name}: annotation ${CORDON_ANNOTATION} is unreadable (${parsed.error}); fix or remove it by hand`,
    };
  }
  // A drill's cordon gives way to a remediation: a fault found during a drill must still be handled.
  const takeover =
    parsed.kind === 'ok' &&
    parsed.record.workflowId !== input.workflowId &&
    parsed.record.workflowId.startsWith(DRILL_OWNER_PREFIX) &&
    !input.workflowId.startsWith(DRILL_OWNER_PREFIX);
  if (parsed.kind === 'ok' && parsed.record.workflowId !== input.workflowId && !takeover) {
    const r = parsed.record;
    return {
      action: 'refuse',
      reason: FailureType.QuarantinedByOther,
      message: `node ${name} is already quarantined by workflow ${r.workflowId} (reason: ${r.reason || 'none'}, at ${r.at || '?'})`,
    };
  }
  const adopt = parsed.kind === 'ok' && input.runId !== undefined && parsed.record.runId !== input.runId;
  const record: CordonRecord =
    parsed.kind === 'ok' && takeover
      ? {
          workflowId: input.workflowId,
          ...(input.runId !== undefined && { runId: input.runId }),
          reason: input.reason,
          at: input.now,
          preexistingCordon: parsed.record.preexistingCordon,
        }
      : parsed.kind === 'ok'
        ? { ...parsed.record, ...(adopt && { runId: input.runId }) }
        : {
            workflowId: input.workflowId,
            ...(input.runId !== undefined && { runId: input.runId }),
            reason: input.reason,
            at: input.now,
            preexistingCordon: node.spec?.unschedulable === true,
          };

  const labelled = node.metadata?.labels?.[QUARANTINED_LABEL] === 'true';
  const tainted = hasQuarantineTaint(node);
  const cordoned = node.spec?.unschedulable === true;
  // A taint with our key but another effect (a hand-made NoExecute, say) is replaced, never kept.
  const foreignEffect = (node.spec?.taints ?? []).some(
    (t) => t.key === QUARANTINE_TAINT_KEY && t.effect !== QUARANTINE_TAINT_EFFECT,
  );
  if (parsed.kind === 'ok' && !adopt && !takeover && labelled && tainted && cordoned && !foreignEffect) {
    return { action: 'noop', record };
  }

  const taints = (node.spec?.taints ?? []).filter((t) => t.key !== QUARANTINE_TAINT_KEY).map(plainTaint);
  taints.push({ ...QUARANTINE_TAINT });
  return {
    action: 'patch',
    record,
    patch: {
      metadata: {
        resourceVersion: resourceVersionOf(node),
        labels: { [QUARANTINED_LABEL]: 'true' },
        annotations: { [CORDON_ANNOTATION]: formatCordonRecord(record) },
      },
      spec: { unschedulable: true, taints },
    },
  };
}

/** What {@link planRelease} decided. */
export type ReleasePlan =
  | { action: 'noop' }
  | { action: 'patch'; record: CordonRecord; uncordon: boolean; patch: NodeMergePatch }
  | {
      action: 'refuse';
      reason: typeof FailureType.NotOwner | typeof FailureType.InvalidAnnotation;
      message: string;
    };

/**
 * Decides how `workflowId` releases its quarantine of `node`: remove the taint, the label and the
 * record, and uncordon only when the record says fleetmedic did the cordoning. Another workflow's
 * quarantine, or quarantine marks without a record, are refused (never released blindly). A node with
 * neither marks nor record is already released (a retry after success): nothing to do.
 */
export function planRelease(node: V1Node, workflowId: string): ReleasePlan {
  const name = node.metadata?.name ?? '?';
  const parsed = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
  if (parsed.kind === 'invalid') {
    return {
      action: 'refuse',
      reason: FailureType.InvalidAnnotation,
      message: `node ${name}: annotation ${CORDON_ANNOTATION} is unreadable (${parsed.error}); fix or remove it by hand`,
    };
  }
  if (parsed.kind === 'absent') {
    const marked =
      node.metadata?.labels?.[QUARANTINED_LABEL] !== undefined ||
      (node.spec?.taints ?? []).some((t) => t.key === QUARANTINE_TAINT_KEY);
    if (!marked) return { action: 'noop' };
    return {
      action: 'refuse',
      reason: FailureType.NotOwner,
      message: `node ${name} carries fleetmedic's quarantine marks but no ${CORDON_ANNOTATION} record: not releasing it for ${workflowId}`,
    };
  }
  const record = parsed.record;
  if (record.workflowId !== workflowId) {
    return {
      action: 'refuse',
      reason: FailureType.NotOwner,
      message: `node ${name} is quarantined by workflow ${record.workflowId}, not ${workflowId}: not releasing it`,
    };
  }
  const remaining = (node.spec?.taints ?? []).filter((t) => t.key !== QUARANTINE_TAINT_KEY).map(plainTaint);
  const uncordon = !record.preexistingCordon;
  const spec: NonNullable<NodeMergePatch['spec']> = { taints: remaining.length > 0 ? remaining : null };
  if (uncordon) spec.unschedulable = false;
  return {
    action: 'patch',
    record,
    uncordon,
    patch: {
      metadata: {
        resourceVersion: resourceVersionOf(node),
        labels: { [QUARANTINED_LABEL]: null },
        annotations: { [CORDON_ANNOTATION]: null },
      },
      spec,
    },
  };
}

/** The result of reading the remediations annotation. */
export type ParsedRemediations = { ok: true; at: string[] } | { ok: false; raw: string; error: string };

/**
 * Reads the `fleetmedic.io/remediations` annotation: a JSON array of ISO timestamps. An absent
 * annotation is an empty history; a malformed one is reported, not silently reset, because the count
 * guards the replace-hardware decision.
 */
export function parseRemediations(raw: string | undefined): ParsedRemediations {
  if (raw === undefined || raw.trim() === '') return { ok: true, at: [] };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { ok: false, raw, error: `not JSON: ${(err as Error).message}` };
  }
  if (!Array.isArray(value)) return { ok: false, raw, error: 'not a JSON array' };
  const bad = (value as unknown[]).find((v) => typeof v !== 'string' || Number.isNaN(Date.parse(v)));
  if (bad !== undefined) return { ok: false, raw, error: `${JSON.stringify(bad)} is not an ISO timestamp` };
  return { ok: true, at: value as string[] };
}

/**
 * Appends `at` to a remediation history, oldest first, keeping the newest `max`. Appending a timestamp
 * already present changes nothing, so a retried activity does not count one remediation twice.
 */
export function appendRemediation(
  history: readonly string[],
  at: string,
  max = MAX_REMEDIATION_RECORDS,
): string[] {
  const instant = Date.parse(at);
  if (history.some((h) => Date.parse(h) === instant)) return [...history];
  return [...history, at].sort((a, b) => Date.parse(a) - Date.parse(b)).slice(-max);
}

/** The merge patch that stores a remediation history (optimistic, like every node update here). */
export function remediationsPatch(node: V1Node, history: readonly string[]): NodeMergePatch {
  return {
    metadata: {
      resourceVersion: resourceVersionOf(node),
      annotations: { [REMEDIATIONS_ANNOTATION]: JSON.stringify(history) },
    },
  };
}

/**
 * What stops a quarantined node from returning to service, in words an operator can act on; empty
 * when nothing does. The node must be Ready and report all its GPUs allocatable (a device plugin that
 * is down leaves allocatable below capacity), and every DaemonSet pod on it must be Running and Ready.
 * Which GPU DaemonSets must have a pod there at all is `gpuDaemonSetBlockers` (k8s/gpu-daemonsets.ts).
 * Fails safe: a node without GPU capacity cannot be shown healthy, so it is blocked too.
 *
 * @param pods the pods on the node.
 */
export function releaseBlockers(node: V1Node, pods: readonly V1Pod[]): string[] {
  const blockers: string[] = [];
  if (!node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) {
    blockers.push('node is not Ready');
  }
  const capacity = quantityOrZero(node.status?.capacity?.[GPU_RESOURCE]);
  const allocatable = quantityOrZero(node.status?.allocatable?.[GPU_RESOURCE]);
  if (capacity <= 0) blockers.push(`node reports no ${GPU_RESOURCE} capacity`);
  else if (allocatable !== capacity) {
    blockers.push(
      `allocatable ${GPU_RESOURCE} is ${allocatable} of ${capacity} (device plugin not serving all GPUs)`,
    );
  }
  for (const pod of pods.filter(isDaemonSetPod)) {
    const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    const phase = pod.status?.phase ?? 'Unknown';
    if (isTerminating(pod)) {
      blockers.push(`DaemonSet pod ${pod.metadata?.namespace}/${pod.metadata?.name} is terminating`);
    } else if (phase !== 'Running' || !ready) {
      blockers.push(
        `DaemonSet pod ${pod.metadata?.namespace}/${pod.metadata?.name} is ${phase}${ready ? '' : ' and not Ready'}`,
      );
    }
  }
  return blockers;
}
