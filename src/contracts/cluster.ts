import { FailureType } from '../errors.js';

/**
 * How a run's cluster ID travels with each activity it schedules: a header set by the workflow
 * interceptor (`src/workflows/interceptors.ts`, from the run's `FleetmedicClusterId` search attribute)
 * and checked by every worker's activity interceptor (`src/workers/cluster-guard.ts`), which refuses
 * an activity of another cluster's run. Two clusters can share a Temporal namespace; a task queue
 * served by the wrong worker must never touch the wrong fleet.
 */
export const CLUSTER_HEADER = 'fleetmedic-cluster-id';

/** The failure type of an activity refused because its run is another cluster's. */
export const WRONG_CLUSTER = FailureType.WrongCluster;

/** The workflow type that records which Kubernetes cluster a cluster ID is bound to. */
export const CLUSTER_IDENTITY_WORKFLOW = 'clusterIdentityWorkflow';

/** Its workflow ID: one per cluster ID in a Temporal namespace. */
export function clusterIdentityWorkflowId(clusterId: string): string {
  return `cluster-identity/${clusterId}`;
}

/** What the binding records (the identity workflow's memo). */
export interface ClusterIdentity {
  /** The UID of the cluster's `kube-system` namespace: made when the cluster was, never reused. */
  readonly kubeSystemUid: string;
  /** The API server the binding worker reached (for the operator reading a refusal). */
  readonly server: string;
  /** ISO-8601. */
  readonly boundAt: string;
}
