/**
 * Names shared by workflows, activities and clients. Each carries the cluster ID: two clusters may
 * share a Temporal namespace, and a worker must never act on another cluster's nodes.
 */

/** One remediation workflow per node and cluster, so repeated alerts join the running one. */
export function remediationWorkflowId(clusterId: string, node: string): string {
  return `remediation/${clusterId}/${node}`;
}

/** The task queue of a node's agent. */
export function nodeTaskQueue(clusterId: string, node: string): string {
  return `fleetmedic-node-${clusterId}-${node}`;
}
