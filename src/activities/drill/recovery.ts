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
 * restore time. Heartbeats each poll.
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
}): Promise<RecoveryWatch> {
  const { core, namespace, selector, victim, before } = args;
  const ctx = activityContext();
  const steps = new Map<RecoveryStep['step'], RecoveryStep>();
  const mark = (step: RecoveryStep['step'], at: number, detail?: string) => {
    if (!steps.has(step)) steps.set(step, { step, at, ...(detail !== undefined && { detail }) });
  };
  let victimGoneAt: number | undefined;
  // A replica wrapper's restore, read once its replacement is Ready (a few tries).
  let restore: ReplicaRestore | undefined;
  let restoreTries = 0;
  for (;;) {
    throwIfCancelled(ctx?.cancellationSignal);
    const pods = await listPods(core, namespace, selector);
    const at = Date.now();
    const v = pods.find((p) => p.metadata?.uid === victim.uid);
    if (args.withEviction && (!v || isTerminating(v))) mark('eviction', at, victim.name);
    if (!v) victimGoneAt ??= at;
    const fresh = pods
      .filter((p) => !before.has(p.metadata?.uid ?? '') && !isTerminating(p))
      .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
    const replacement = fresh[0];
    if (replacement) {
      const name = replacement.metadata?.name ?? '?';
      mark('replacement-created', at, name);
      if (replacement.spec?.nodeName) mark('scheduled', at, `${name} on ${replacement.spec.nodeName}`);
      if (podReady(replacement)) {
        mark('ready', at, name);
        if (!restore && restoreTries < 5 && readyPort(replacement) !== undefined) {
          restoreTries++;
          restore = await fetchRestore(replacement);
          for (const s of restore?.steps ?? []) mark(s.step, s.at, s.detail);
        }
      }
    }
    const ready = pods.filter((p) => !isTerminating(p) && podReady(p)).length;
    if (ready >= args.replicas && steps.has('ready')) mark('all-ready', at, `${ready} Ready`);
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
    ctx?.heartbeat({ steps: [...steps.keys()] });
    await pause(args.pollMs, ctx?.cancellationSignal);
  }
}
