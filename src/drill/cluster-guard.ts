/**
 * The drill's real-cluster guard (issue #16): whether `fleetmedic drill` may run against the cluster
 * it targets, decided from what the command knows, without I/O. The embedded stack needs nothing
 * more; a real cluster needs its kubeconfig and context named on the command line, a confirmation
 * naming the cluster ID, and the cluster the context reaches must be the one that cluster ID is bound
 * to. It fails safe: whatever cannot be evaluated refuses.
 */
import type { ClusterIdentity } from '../contracts/cluster.js';

/** Where the kubeconfig in use comes from. */
export type DrillKubeconfig =
  | {
      /** `flag`: `--kubeconfig` on the command line; `environment`: FLEETMEDIC_KUBECONFIG. */
      readonly from: 'flag' | 'environment';
      readonly file: string;
      /** The names of the file's contexts. */
      readonly contexts: readonly string[];
    }
  | { readonly from: 'in-cluster' };

/** What the cluster named by the kubeconfig and context is, and what the cluster ID is bound to. */
export interface DrillClusterIdentity {
  /** The binding recorded in Temporal (`cluster-identity/<cluster ID>`); undefined when none runs. */
  readonly bound: Partial<ClusterIdentity> | undefined;
  /** The cluster the kubeconfig's context reaches. */
  readonly reached: { readonly kubeSystemUid: string; readonly server: string };
}

/** What the command knows when it decides. */
export interface DrillTargetFacts {
  /** The targets are the embedded stack `fleetmedic up` recorded, whose cluster is a simulation. */
  readonly simulated: boolean;
  /** The cluster ID the drill runs under (FLEETMEDIC_CLUSTER_ID or `--cluster-id`). */
  readonly clusterId: string;
  readonly kubeconfig: DrillKubeconfig;
  /** `--context`. */
  readonly context: string | undefined;
  /** `--confirm-cluster`. */
  readonly confirmCluster: string | undefined;
  /** Whether `--target-url` names the gateway in front of the Deployment. */
  readonly targetUrl: boolean;
  /** `--drain-node`. */
  readonly drainNode: boolean;
  /** Read only once everything else allows the drill (it needs the cluster and Temporal). */
  readonly identity?: DrillClusterIdentity;
}

/**
 * The guard's answer. `check-identity`: the flags allow the drill; read what `context` reaches and
 * what the cluster ID is bound to, then decide again with `identity`.
 */
export type DrillTargetDecision =
  | { readonly kind: 'allowed'; readonly drainNode: boolean }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'check-identity'; readonly context: string };

const list = (names: readonly string[]): string => (names.length > 0 ? names.join(', ') : 'none');

/**
 * Decides whether the drill may run against its target, and whether it may drain a node. On the
 * embedded stack: always, draining as before. On a real cluster only with `--kubeconfig`,
 * `--context` (one of the file's), `--confirm-cluster <the cluster ID>`, `--target-url`, and a
 * context that reaches the cluster the cluster ID is bound to; it drains a node only with
 * `--drain-node`. A refusal's reason says what to do.
 *
 * @example
 * decideDrillTarget({ simulated: true, ... }) // { kind: 'allowed', drainNode: true }
 */
export function decideDrillTarget(f: DrillTargetFacts): DrillTargetDecision {
  if (f.simulated) return { kind: 'allowed', drainNode: true };
  const refused = (reason: string): DrillTargetDecision => ({ kind: 'refused', reason });
  const k = f.kubeconfig;
  if (k.from === 'in-cluster') {
    return refused(
      "a drill of a real cluster needs its kubeconfig named on the command line (--kubeconfig <file>), not the pod's " +
        'ServiceAccount (FLEETMEDIC_IN_CLUSTER=true)',
    );
  }
  if (k.from !== 'flag') {
    // A variable left in the shell must not be enough to aim a drill at a real cluster.
    return refused(
      `a drill of a real cluster needs its kubeconfig named on the command line: add --kubeconfig ${k.file} ` +
        '(FLEETMEDIC_KUBECONFIG alone is not enough)',
    );
  }
  if (f.context === undefined || f.context === '') {
    return refused(
      `a drill of a real cluster needs --context <name>, the context of ${k.file} that reaches the cluster to ` +
        `drill (the file has: ${list(k.contexts)})`,
    );
  }
  if (!k.contexts.includes(f.context)) {
    return refused(`--context ${f.context} is not a context of ${k.file} (it has: ${list(k.contexts)})`);
  }
  if (f.confirmCluster === undefined) {
    return refused(
      `a drill of a real cluster deletes and evicts pods${f.drainNode ? ' and drains a node' : ''}: confirm with ` +
        `--confirm-cluster ${f.clusterId}, the cluster ID its control worker is bound to`,
    );
  }
  if (f.confirmCluster !== f.clusterId) {
    return refused(
      `--confirm-cluster ${f.confirmCluster} does not name the cluster ID the drill runs under (${f.clusterId}, ` +
        'from --cluster-id or FLEETMEDIC_CLUSTER_ID): check which cluster you mean',
    );
  }
  if (!f.targetUrl) {
    return refused(
      'a drill of a real cluster needs --target-url, the gateway in front of its Deployment: the command starts ' +
        'stand-ins, a gateway and a worker itself only on the embedded stack',
    );
  }
  if (f.identity === undefined) return { kind: 'check-identity', context: f.context };
  const { bound, reached } = f.identity;
  if (bound?.kubeSystemUid === undefined) {
    return refused(
      `cluster ID ${f.clusterId} is bound to no cluster yet (no running workflow cluster-identity/${f.clusterId} ` +
        `in Temporal): start its control worker, which binds it to its cluster, then drill`,
    );
  }
  if (bound.kubeSystemUid !== reached.kubeSystemUid) {
    return refused(
      `cluster ID ${f.clusterId} is bound to the cluster at ${bound.server ?? '(unknown)'} (kube-system UID ` +
        `${bound.kubeSystemUid}, since ${bound.boundAt ?? '(unknown)'}), but --kubeconfig ${k.file} --context ` +
        `${f.context} reaches ${reached.server} (kube-system UID ${reached.kubeSystemUid}): give the context of the ` +
        'cluster its control worker runs against, or the cluster ID of the cluster you mean',
    );
  }
  return { kind: 'allowed', drainNode: f.drainNode };
}
