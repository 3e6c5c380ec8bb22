/**
 * Workflow interceptors, bundled with every workflow (see `workflowBundleOptions`): each activity a
 * run schedules carries the run's cluster ID in the `fleetmedic-cluster-id` header, taken from its
 * `FleetmedicClusterId` search attribute (set when the run starts), so that the worker that picks it
 * up can refuse a run of another cluster. Headers are not part of the determinism check: runs
 * recorded before this replay unchanged.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import {
  workflowInfo,
  type ActivityInput,
  type LocalActivityInput,
  type Next,
  type WorkflowInterceptorsFactory,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { CLUSTER_HEADER } from '../contracts/cluster.js';
import { CLUSTER_ID } from '../contracts/search-attributes.js';

function withCluster<T extends ActivityInput | LocalActivityInput>(input: T): T {
  const cluster = workflowInfo().typedSearchAttributes.get(CLUSTER_ID);
  if (typeof cluster !== 'string' || cluster === '') return input;
  return {
    ...input,
    headers: { ...input.headers, [CLUSTER_HEADER]: defaultPayloadConverter.toPayload(cluster) },
  };
}

class ClusterHeader implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>) {
    return next(withCluster(input));
  }

  scheduleLocalActivity(
    input: LocalActivityInput,
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>,
  ) {
    return next(withCluster(input));
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ outbound: [new ClusterHeader()] });
