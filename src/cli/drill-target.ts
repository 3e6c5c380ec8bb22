/**
 * Gathers what the drill's real-cluster guard (`decideDrillTarget`) decides on and carries out its
 * answer: the kubeconfig and its contexts first (files only), then, when the flags allow the drill,
 * the cluster the context reaches and the cluster ID's binding in Temporal.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { kubeSystemUid, readClusterBinding } from '../client/cluster-identity.js';
import { connectionOptions } from '../client/temporal-connection.js';
import {
  decideDrillTarget,
  type DrillClusterIdentity,
  type DrillKubeconfig,
  type DrillTargetFacts,
} from '../drill/cluster-guard.js';
import { ConfigError } from '../errors.js';
import { assertSimulatedCluster } from '../stack/sim-cluster.js';
import { targetKubeConfig, type Targets } from './context.js';

/** The drill command's flags the guard reads. */
export interface DrillTargetFlags {
  /** Whether the kubeconfig was given as `--kubeconfig` on the command line (not FLEETMEDIC_KUBECONFIG). */
  readonly kubeconfigFlag: boolean;
  readonly context: string | undefined;
  readonly confirmCluster: string | undefined;
  readonly targetUrl: boolean;
  readonly drainNode: boolean;
}

/** The cluster `kc` reaches and the binding of `clusterId`, read through a connection of its own. */
export async function readDrillClusterIdentity(
  targets: Pick<Targets, 'temporal' | 'namespace' | 'clusterId'>,
  kc: KubeConfig,
): Promise<DrillClusterIdentity> {
  const reached = {
    kubeSystemUid: await kubeSystemUid(kc),
    server: kc.getCurrentCluster()?.server ?? '(unknown)',
  };
  const connection = await Connection.connect(connectionOptions(targets.temporal));
  try {
    const client = new Client({ connection, namespace: targets.namespace });
    return { bound: await readClusterBinding(client, targets.clusterId), reached };
  } finally {
    await connection.close();
  }
}

/**
 * Refuses, with a ConfigError saying what to do, a drill the guard does not allow; nothing connects
 * before the flags pass. On the embedded stack the cluster must carry the simulation marker.
 *
 * @returns the Kubernetes credentials (on `--context` when given) and whether the drill may drain a node.
 */
export async function guardDrillTarget(
  targets: Targets,
  flags: DrillTargetFlags,
  readIdentity: typeof readDrillClusterIdentity = readDrillClusterIdentity,
): Promise<{ kc: KubeConfig; drainNode: boolean }> {
  const kc = targetKubeConfig(targets);
  if (targets.embedded) await assertSimulatedCluster(kc);
  const kubeconfig: DrillKubeconfig =
    targets.inCluster || targets.kubeconfig === undefined
      ? { from: 'in-cluster' }
      : {
          from: flags.kubeconfigFlag ? 'flag' : 'environment',
          file: targets.kubeconfig,
          contexts: kc.getContexts().map((c) => c.name),
        };
  const facts: DrillTargetFacts = {
    simulated: targets.embedded,
    clusterId: targets.clusterId,
    kubeconfig,
    context: flags.context,
    confirmCluster: flags.confirmCluster,
    targetUrl: flags.targetUrl,
    drainNode: flags.drainNode,
  };
  let decision = decideDrillTarget(facts);
  if (decision.kind === 'check-identity') {
    kc.setCurrentContext(decision.context);
    decision = decideDrillTarget({ ...facts, identity: await readIdentity(targets, kc) });
  }
  if (decision.kind !== 'allowed') {
    throw new ConfigError(
      decision.kind === 'refused'
        ? decision.reason
        : 'the cluster identity was not checked: refusing the drill',
    );
  }
  return { kc, drainNode: decision.drainNode };
}
