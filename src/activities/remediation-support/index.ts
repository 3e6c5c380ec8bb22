import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { makeApiClient } from '../../k8s/api-client.js';
import { createCapacityActivities } from './capacity.js';
import { createFleetBudgetClient, type FleetBudgetClientDeps } from './fleet-budget-client.js';

export { coalesce } from './coalesce.js';

export interface RemediationSupportDeps extends FleetBudgetClientDeps {
  readonly kc: KubeConfig;
}

/**
 * Activities the remediation workflow needs beside the Kubernetes steps: the fleet budget's updates,
 * called through the client so that the caller learns at once whether it got a slot, and the
 * capacity check before a drain. (The node's own records, episodes and holds, are in node-records.ts.)
 *
 * fleet-budget-client.ts: `budgetReportFailure`, `budgetAcquire`, `budgetRelease`; capacity.ts:
 * `checkCapacity`. Operators are notified by the `notify` activity (observability.ts).
 */
export function createRemediationSupportActivities(deps: RemediationSupportDeps) {
  const core = makeApiClient(deps.kc, CoreV1Api);
  // Workers register activities by these names: budgetReportFailure, budgetAcquire, budgetRelease,
  // checkCapacity.
  return {
    ...createFleetBudgetClient(deps, core),
    ...createCapacityActivities(core),
  };
}

export type RemediationSupportActivities = ReturnType<typeof createRemediationSupportActivities>;
