/**
 * Watching a Deployment recover after one of its pods was deleted or evicted: the recovery steps of
 * the drill report, each at the time this poll first saw it.
 */
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { DrillFailureType } from '../../contracts/drill.js';
import { replicaRestore, type ReplicaRestore } from '../../drill/replica-phases.js';
import type { RecoveryStep } from '../../drill/report.js';
import type { ReplicaPhases } from '../../runner/replica.js';
import { isTerminating } from '../../k8s/drain-plan.js';
import { activityContext, pause, throwIfCancelled } from '../kubernetes/control.js';

/** A pod being disrupted: by name and UID (a replacement may reuse no name, but never a UID). */
export interface Victim {
  readonly name: string;
  readonly uid: string;
}

export function podReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** The Deployment's pods by its selector, as `app=<name>` the drill's Deployments use. */
export async function listPods(core: CoreV1Api, namespace: string, selector: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
}

/** What {@link watchRecovery} saw. */
export interface RecoveryWatch {
  readonly steps: RecoveryStep[];
  /** When the victim pod was gone from the API server (its process stopped). */
  readonly victimGoneAt: number;
  /** The replacement's restore from checkpoint, as it measured it (a replica wrapper's `/phases`). */
  readonly restoreMs?: number;
}

/** What a watch heartbeats: the steps seen and when, so that a retry keeps them. */
interface WatchProgress {
  readonly steps: RecoveryStep[];
  readonly victimGoneAt?: number;
}

function readWatchProgress(details: unknown): WatchProgress | undefined {
  const d = details as { steps?: unknown; victimGoneAt?: unknown } | undefined;
  if (!Array.isArray(d?.steps)) return undefined;
  const steps = (d.steps as Partial<RecoveryStep>[]).filter(
    (s): s is RecoveryStep => typeof s?.step === 'string' && typeof s.at === 'number',
  );
  return { steps, ...(typeof d.victimGoneAt === 'number' && { victimGoneAt: d.victimGoneAt }) };
}

function epochMs(t: Date | string | undefined): number | undefined {
  const ms = t === undefined ? NaN : new Date(t).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

/** When the pod's condition `type` last became True, as the cluster recorded it (to the second). */
function conditionAt(pod: V1Pod, type: string): number | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === type && x.status === 'True');
  return epochMs(c?.lastTransitionTime);
}

/** When the pod's deletion (or eviction) was asked for: its deletion timestamp less its grace period. */
function deletionAt(pod: V1Pod): number | undefined {
  const at = epochMs(pod.metadata?.deletionTimestamp);
  return at === undefined ? undefined : at - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
}

/** The port named `ready` of a pod's containers: a replica wrapper serving `/ready` and `/phases`. */
function readyPort(pod: V1Pod): number | undefined {
  for (const c of pod.spec?.containers ?? []) {
    const port = c.ports?.find((p) => p.name === 'ready')?.containerPort;
    if (port !== undefined) return port;
  }
  return undefined;
}

/**
 * The replacement's restore steps from its wrapper's `/phases`, or undefined when it has no wrapper
 * (a stand-in), its IP is unknown, or it did not answer within 2 s (the caller asks again).
 */
async function fetchRestore(pod: V1Pod): Promise<ReplicaRestore | undefined> {
  const port = readyPort(pod);
  const ip = pod.status?.podIP;
  if (port === undefined || !ip) return undefined;
  try {
    const res = await fetch(`http://${ip}:${port}/phases`, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) return undefined;
    return replicaRestore((await res.json()) as ReplicaPhases, pod.metadata?.name ?? '?');
  } catch {
    return undefined;
  }
}

/**
 * Polls the Deployment's pods every `pollMs` until the victim is gone and `replicas` pods are Ready
 * and not terminating; records `eviction` (victim terminating, when `withEviction`),
 * `replacement-created`, `scheduled`, `ready` (the first pod created after the injection) and
 * `all-ready`; for a replacement with a replica wrapper (a container port named `ready`), also its
 * `checkpoint-restored`, `health-200` and `slot-restored` from the wrapper's `/phases`, and its
 * restore time. Heartbeats each poll with the steps seen.
 *
 * A retry (the worker that ran an earlier attempt died) keeps the steps the earlier attempt
 * heartbeated, and what its first poll finds already done happened while nobody watched: those steps
 * take the time the cluster recorded (creation, `PodScheduled` and `Ready` transitions: the end of
 * the recorded second), not the poll's, so the worker's downtime is never reported as recovery time. A victim
 * already gone then is dated by the poll (later than it went: the phase's window only grows).
 *
 * @throws non-retryable `DrillRecoveryTimeout` naming the missing steps when `deadlineMs` passes.
 */
export async function watchRecovery(args: {
  core: CoreV1Api;
  namespace: string;
  selector: string;
  replicas: number;
  victim: Victim;
  before: ReadonlySet<string>;
  withEviction: boolean;
  deadlineMs: number;
  pollMs: number;
  /**
   * Heartbeated with every progress report: the caller's own record (a deletion's victim), which a
   * heartbeat of the watch alone would replace, and which its retry needs.
   */
  carry?: Record<string, unknown>;
}): Promise<RecoveryWatch> {
  const { core, namespace, selector, victim, before } = args;
  const ctx = activityContext();
  const retry = (ctx?.info.attempt ?? 1) > 1;
  const resumed = retry ? readWatchProgress(ctx?.info.heartbeatDetails) : undefined;
  const steps = new Map<RecoveryStep['step'], RecoveryStep>(resumed?.steps.map((s) => [s.step, s]));
  // True during a retry's first poll only: see the TSDoc.
  let catchingUp = retry;
  const mark = (step: RecoveryStep['step'], polledAt: number, detail?: string, recordedAt?: number) => {
    if (steps.has(step)) return;
    // The record is to the second: its second's end is never before the step, so never flatters.
    const recorded = recordedAt === undefined ? polledAt : recordedAt + 999;
    const at = catchingUp ? Math.min(recorded, polledAt) : polledAt;
    steps.set(step, { step, at, ...(detail !== undefined && { detail }) });
  };
  let victimGoneAt: number | undefined = resumed?.victimGoneAt;
  // A replica wrapper's restore, read once its replacement is Ready (a few tries).
  let restore: ReplicaRestore | undefined;
  let restoreTries = 0;
  for (;;) {
    throwIfCancelled(ctx?.cancellationSignal);
    const pods = await listPods(core, namespace, selector);
    const at = Date.now();
    const v = pods.find((p) => p.metadata?.uid === victim.uid);
    if (!v) victimGoneAt ??= at;
    const fresh = pods
      .filter((p) => !before.has(p.metadata?.uid ?? '') && !isTerminating(p))
      .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
    const replacement = fresh[0];
    if (args.withEviction && (!v || isTerminating(v))) {
      // Gone: its replacement was created once it was evicted, so no earlier than that.
      const recorded = v ? deletionAt(v) : replacement && epochMs(replacement.metadata?.creationTimestamp);
      mark('eviction', at, victim.name, recorded);
    }
    if (replacement) {
      const name = replacement.metadata?.name ?? '?';
      mark('replacement-created', at, name, epochMs(replacement.metadata?.creationTimestamp));
      if (replacement.spec?.nodeName) {
        const on = `${name} on ${replacement.spec.nodeName}`;
        mark('scheduled', at, on, conditionAt(replacement, 'PodScheduled'));
      }
      if (podReady(replacement)) {
        mark('ready', at, name, conditionAt(replacement, 'Ready'));
        if (!restore && restoreTries < 5 && readyPort(replacement) !== undefined) {
          restoreTries++;
          restore = await fetchRestore(replacement);
          for (const s of restore?.steps ?? []) mark(s.step, s.at, s.detail);
        }
      }
    }
    const readyPods = pods.filter((p) => !isTerminating(p) && podReady(p));
    const ready = readyPods.length;
    if (ready >= args.replicas && steps.has('ready')) {
      const times = readyPods.map((p) => conditionAt(p, 'Ready'));
      const last = times.every((t): t is number => t !== undefined) ? Math.max(...times) : undefined;
      mark('all-ready', at, `${ready} Ready`, last);
    }
    catchingUp = false;
    if (steps.has('all-ready') && victimGoneAt !== undefined) {
      return {
        steps: [...steps.values()].sort((a, b) => a.at - b.at),
        victimGoneAt,
        ...(restore?.restoreMs !== undefined && { restoreMs: restore.restoreMs }),
      };
    }
    if (at > args.deadlineMs) {
      const missing = ['replacement-created', 'scheduled', 'ready', 'all-ready'].filter(
        (s) => !steps.has(s as RecoveryStep['step']),
      );
      throw ApplicationFailure.nonRetryable(
        `the Deployment did not recover from the loss of ${victim.name}: ` +
          `${missing.length > 0 ? `no ${missing.join(', ')}` : 'the victim pod never went away'}`,
        DrillFailureType.RecoveryTimeout,
      );
    }
    const progress: WatchProgress = {
      steps: [...steps.values()],
      ...(victimGoneAt !== undefined && { victimGoneAt }),
    };
    ctx?.heartbeat({ ...args.carry, ...progress });
    await pause(args.pollMs, ctx?.cancellationSignal);
  }
}
