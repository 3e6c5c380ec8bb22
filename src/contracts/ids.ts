/**
 * Names shared by workflows, activities and clients. Each carries the cluster ID: two clusters may
 * share a Temporal namespace, and a worker must never act on another cluster's nodes.
 */

/** One remediation workflow per node and cluster, so repeated alerts join the running one. */
export function remediationWorkflowId(clusterId: string, node: string): string {
  return `remediation/${clusterId}/${node}`;
}

/**
 * The task queue of a node's agent. A cluster ID is a DNS label and a node name a DNS subdomain,
 * neither holds a `/`, so no two (cluster, node) pairs share a queue (with `-` between them,
 * `prod-east`/`gpu-1` and `prod`/`east-gpu-1` did).
 */
export function nodeTaskQueue(clusterId: string, node: string): string {
  return `fleetmedic-node/${clusterId}/${node}`;
}

/**
 * The task queue of the fleet budget workflow: its own, served by a worker of its own in the control
 * worker process, so that its updates are never queued behind a storm of remediation workflow tasks
 * (whose alert-to-cordon steps wait on those very updates).
 */
export function budgetTaskQueue(controlTaskQueue: string): string {
  return controlTaskQueue.endsWith(BUDGET_QUEUE_SUFFIX)
    ? controlTaskQueue
    : `${controlTaskQueue}${BUDGET_QUEUE_SUFFIX}`;
}
const BUDGET_QUEUE_SUFFIX = '-fleet-budget';

/**
 * The control task queue of a fleet budget's task queue (the inverse of {@link budgetTaskQueue}): the
 * budget's activities (its records in the cluster) run on the control worker.
 */
export function controlTaskQueueOf(budgetQueue: string): string {
  return budgetQueue.endsWith(BUDGET_QUEUE_SUFFIX)
    ? budgetQueue.slice(0, -BUDGET_QUEUE_SUFFIX.length)
    : budgetQueue;
}
