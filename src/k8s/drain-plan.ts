import type { V1Pod } from '@kubernetes/client-node';
import { MIRROR_POD_ANNOTATION } from './remediation-labels.js';

/** Enough to name a pod and to evict exactly that incarnation of it (`uid` precondition). */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** Why a drain refuses a pod unless the caller opts in (kubectl's `--force`, `--delete-emptydir-data`). */
export type DrainRefusalReason = 'unmanaged' | 'emptyDir';

export interface DrainRefusal {
  pod: PodRef;
  reasons: DrainRefusalReason[];
}

/**
 * Restricts a drain to some pods. `labelSelector` is applied by the API server when the pods are
 * listed (the activity passes it on); `namespaces` / `excludeNamespaces` are applied by
 * {@link planDrain}. Pods left out are counted as `skipped.filtered` and never touched.
 */
export interface DrainPodFilter {
  namespaces?: string[];
  excludeNamespaces?: string[];
  labelSelector?: string;
}

export interface DrainPlanOptions {
  /** Evict pods that no controller owns (they will not come back). kubectl's `--force`. */
  force?: boolean;
  /** Evict pods with emptyDir volumes (their data is lost). kubectl's `--delete-emptydir-data`. */
  deleteEmptyDirData?: boolean;
  podFilter?: DrainPodFilter;
}

/** What a drain does with each pod on the node. */
export interface DrainPlan {
  /** Pods to evict, in listing order. */
  toEvict: PodRef[];
  skipped: {
    /** Recreated on the node by their DaemonSet whatever happens; the GPU DaemonSets must stay. */
    daemonSet: PodRef[];
    /** Static pods' API mirrors: the kubelet owns them, the Eviction API cannot remove them. */
    mirror: PodRef[];
    /** Already being deleted: not evicted again, but the drain waits until they are gone. */
    terminating: PodRef[];
    /** Succeeded or Failed: they hold no resources and serve nothing. */
    completed: PodRef[];
    /** Left out by the caller's {@link DrainPodFilter}. */
    filtered: PodRef[];
  };
  /** Pods the drain refuses to evict without an opt-in; a non-empty list means nothing is evicted. */
  refused: DrainRefusal[];
}

export function podRef(pod: V1Pod): PodRef {
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
  };
}

/** The pod's controller (the owner reference with `controller: true`), if any. */
export function controllerOf(pod: V1Pod): { kind: string; name: string } | undefined {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  return owner ? { kind: owner.kind, name: owner.name } : undefined;
}

export function isDaemonSetPod(pod: V1Pod): boolean {
  return controllerOf(pod)?.kind === 'DaemonSet';
}

export function isMirrorPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION] !== undefined;
}

export function isTerminating(pod: V1Pod): boolean {
  return pod.metadata?.deletionTimestamp != null;
}

export function isCompleted(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

export function hasEmptyDir(pod: V1Pod): boolean {
  return (pod.spec?.volumes ?? []).some((v) => v.emptyDir != null);
}

function selected(pod: V1Pod, filter: DrainPodFilter | undefined): boolean {
  const ns = pod.metadata?.namespace ?? '';
  if (filter?.namespaces && !filter.namespaces.includes(ns)) return false;
  if (filter?.excludeNamespaces?.includes(ns)) return false;
  return true;
}

/**
 * Classifies the pods of a node for a drain, with `kubectl drain` semantics: DaemonSet pods and mirror
 * pods stay; pods being deleted are waited for, not evicted again; completed pods are left; pods
 * without a controller are refused unless `force` (nothing would recreate them), pods with emptyDir
 * volumes unless `deleteEmptyDirData` (their data dies with them). A pod can be refused for both
 * reasons. The checks run in that order, so a terminating or completed pod is never refused.
 */
export function planDrain(pods: readonly V1Pod[], options: DrainPlanOptions = {}): DrainPlan {
  const plan: DrainPlan = {
    toEvict: [],
    skipped: { daemonSet: [], mirror: [], terminating: [], completed: [], filtered: [] },
    refused: [],
  };
  for (const pod of pods) {
    const ref = podRef(pod);
    if (!selected(pod, options.podFilter)) plan.skipped.filtered.push(ref);
    else if (isMirrorPod(pod)) plan.skipped.mirror.push(ref);
    else if (isDaemonSetPod(pod)) plan.skipped.daemonSet.push(ref);
    else if (isCompleted(pod)) plan.skipped.completed.push(ref);
    else if (isTerminating(pod)) plan.skipped.terminating.push(ref);
    else {
      const reasons: DrainRefusalReason[] = [];
      if (!controllerOf(pod) && !options.force) reasons.push('unmanaged');
      if (hasEmptyDir(pod) && !options.deleteEmptyDirData) reasons.push('emptyDir');
      if (reasons.length > 0) plan.refused.push({ pod: ref, reasons });
      else plan.toEvict.push(ref);
    }
  }
  return plan;
}

const REFUSAL_HINTS: Record<DrainRefusalReason, string> = {
  unmanaged: 'not managed by a controller (use force to evict it anyway; nothing will recreate it)',
  emptyDir: 'uses emptyDir volumes (use deleteEmptyDirData to evict it anyway; the data is lost)',
};

/** A one-paragraph account of refused pods, naming each pod and why. */
export function describeRefusals(refused: readonly DrainRefusal[]): string {
  return refused
    .map((r) => `${r.pod.namespace}/${r.pod.name}: ${r.reasons.map((x) => REFUSAL_HINTS[x]).join('; ')}`)
    .join('\n');
}

/** First wait after a 429 (the PDB allows no disruption now). */
export const EVICTION_BACKOFF_BASE_MS = 1_000;
/** Longest wait between two eviction attempts of one pod, before jitter. */
export const EVICTION_BACKOFF_CAP_MS = 10_000;

/**
 * How long to wait before eviction attempt `retry` + 1 of a pod after `retry` + 1 refusals (429):
 * 1 s, 2 s, 4 s, 8 s, then 10 s, each plus up to 20% jitter so that concurrent drains do not retry
 * in lockstep against the same PodDisruptionBudget.
 *
 * @param random a number in [0, 1), `Math.random()` by default (tests pass a constant).
 */
export function evictionBackoffMs(retry: number, random: number = Math.random()): number {
  const exponent = Math.min(Math.max(0, Math.floor(retry)), 16);
  const delay = Math.min(EVICTION_BACKOFF_CAP_MS, EVICTION_BACKOFF_BASE_MS * 2 ** exponent);
  return Math.round(delay * (1 + 0.2 * random));
}
