/**
 * The activity interceptor of every fleetmedic worker: an activity whose run carries another
 * cluster's ID (the `fleetmedic-cluster-id` header, see `src/workflows/interceptors.ts`) is refused
 * with a non-retryable `WrongCluster` failure before it runs. An activity without the header (a run
 * started before runs carried it, or a test calling the activity directly) runs as before.
 */
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  Next,
} from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import { CLUSTER_HEADER, WRONG_CLUSTER } from '../contracts/cluster.js';

type ExecuteInput = ActivityExecuteInput;

/**
 * The cluster a run's activity is for, from its header; undefined without one.
 *
 * @throws non-retryable `WrongCluster` when the header is not a string.
 */
export function clusterOfActivity(input: ExecuteInput): string | undefined {
  const payload = input.headers[CLUSTER_HEADER];
  if (payload === undefined) return undefined;
  const value: unknown = defaultPayloadConverter.fromPayload(payload);
  if (typeof value !== 'string') {
    throw ApplicationFailure.nonRetryable(`the ${CLUSTER_HEADER} header is not a cluster ID`, WRONG_CLUSTER);
  }
  return value;
}

/** Activity interceptors for a worker of `clusterId`: refuse other clusters' runs. */
export function clusterGuard(clusterId: string): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      execute(input: ExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        const cluster = clusterOfActivity(input);
        if (cluster !== undefined && cluster !== clusterId) {
          const { activityType, workflowExecution } = ctx.info;
          throw ApplicationFailure.nonRetryable(
            `activity ${activityType} of ${workflowExecution?.workflowId ?? 'a run'} is for cluster ${cluster}, but this ` +
              `worker serves cluster ${clusterId}: refused (check the workers' FLEETMEDIC_CLUSTER_ID and task queues)`,
            WRONG_CLUSTER,
          );
        }
        return next(input);
      },
    },
  });
}
