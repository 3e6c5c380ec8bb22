/**
 * Binds a cluster ID to the Kubernetes cluster it names, at first use: the UID of the cluster's
 * `kube-system` namespace is recorded in Temporal (the memo of `cluster-identity/<cluster ID>`, a
 * workflow that never ends), and every control worker compares its own cluster's UID with the record
 * before it starts. A kubeconfig that reaches another cluster under the same cluster ID (a copied
 * config, a renamed context) is refused instead of remediating the wrong fleet.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  CLUSTER_IDENTITY_WORKFLOW,
  clusterIdentityWorkflowId,
  type ClusterIdentity,
} from '../contracts/cluster.js';
import { CLUSTER_ID } from '../contracts/search-attributes.js';
import { ConfigError } from '../errors.js';
import { makeApiClient } from '../k8s/api-client.js';
import { apiErrorStatus } from '../k8s/api-errors.js';
import { apiErrorMessage } from '../k8s/api-status.js';

export interface ClusterBinding {
  readonly identity: ClusterIdentity;
  /** True when this call made the binding (first use of the cluster ID). */
  readonly created: boolean;
}

/** The UID of the cluster's `kube-system` namespace. */
export async function kubeSystemUid(kc: KubeConfig): Promise<string> {
  try {
    const ns = await makeApiClient(kc, CoreV1Api).readNamespace({ name: 'kube-system' });
    if (!ns.metadata?.uid) throw new Error('the namespace has no UID');
    return ns.metadata.uid;
  } catch (err) {
    const status = apiErrorStatus(err);
    throw new ConfigError(
      `cannot read namespace kube-system of ${kc.getCurrentCluster()?.server ?? 'the cluster'} ` +
        `(${status === undefined ? (err as Error).message : apiErrorMessage(err)}): its UID binds the cluster ID ` +
        `to this cluster${status === 403 ? '; grant the worker get on namespaces (the chart does)' : ''}`,
      { cause: err },
    );
  }
}

/**
 * The binding of `clusterId` as recorded in Temporal, without making one.
 *
 * @returns undefined when no binding runs: never bound, or its workflow ended (terminated to bind again).
 */
export async function readClusterBinding(
  client: Client,
  clusterId: string,
): Promise<Partial<ClusterIdentity> | undefined> {
  try {
    const run = await client.workflow.getHandle(clusterIdentityWorkflowId(clusterId)).describe();
    return run.status.name === 'RUNNING' ? run.memo : undefined;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Records (first use) or checks the binding of `clusterId` to the cluster `kc` reaches.
 *
 * @throws ConfigError when the cluster ID is bound to another cluster, naming both.
 */
export async function bindClusterIdentity(options: {
  readonly client: Client;
  readonly kc: KubeConfig;
  readonly clusterId: string;
  readonly taskQueue: string;
  readonly now?: () => Date;
}): Promise<ClusterBinding> {
  const { client, kc, clusterId } = options;
  const ours: ClusterIdentity = {
    kubeSystemUid: await kubeSystemUid(kc),
    server: kc.getCurrentCluster()?.server ?? '(unknown)',
    boundAt: (options.now?.() ?? new Date()).toISOString(),
  };
  const workflowId = clusterIdentityWorkflowId(clusterId);
  let created = false;
  try {
    await client.workflow.start(CLUSTER_IDENTITY_WORKFLOW, {
      workflowId,
      taskQueue: options.taskQueue,
      memo: { ...ours },
      typedSearchAttributes: [{ key: CLUSTER_ID, value: clusterId }],
      staticSummary: `cluster ID ${clusterId} is bound to the cluster whose kube-system UID is ${ours.kubeSystemUid}`,
    });
    created = true;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  const recorded = await readClusterBinding(client, clusterId);
  if (recorded?.kubeSystemUid !== ours.kubeSystemUid) {
    throw new ConfigError(
      `cluster ID ${clusterId} is bound to another cluster (kube-system UID ${recorded?.kubeSystemUid ?? '(none)'}, ` +
        `API server ${recorded?.server ?? '(unknown)'}, since ${recorded?.boundAt ?? '(unknown)'}), but this ` +
        `kubeconfig reaches ${ours.server} (kube-system UID ${ours.kubeSystemUid}): check FLEETMEDIC_KUBECONFIG ` +
        `and FLEETMEDIC_CLUSTER_ID; if the cluster was rebuilt on purpose, terminate workflow ${workflowId} to bind again`,
    );
  }
  return { identity: created ? ours : (recorded as ClusterIdentity), created };
}
