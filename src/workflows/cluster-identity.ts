import { condition } from '@temporalio/workflow';

/**
 * The record that binds a cluster ID to one Kubernetes cluster: it does nothing and never ends; the
 * identity is in its memo, written when it starts (see `bindClusterIdentity`). A control worker whose
 * kubeconfig reaches another cluster finds a different identity here and refuses to start.
 */
export async function clusterIdentityWorkflow(): Promise<void> {
  await condition(() => false);
}
