import {
  ChildWorkflowCancellationType,
  executeChild,
  ParentClosePolicy,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import { DRILL_WORKFLOW, drillWorkflowId, type DrillResult } from '../../contracts/drill.js';
import { scheduledDrillId, type ScheduledDrillInput } from '../../contracts/drill-schedule.js';
import { CLUSTER_ID } from '../../contracts/search-attributes.js';
import type { drillWorkflow } from './workflow.js';

/**
 * The workflow a drill schedule starts: it names the run's drill (`scheduledDrillId` of the schedule
 * and its own start time) and runs `drillWorkflow` as its child under the ID the reaper and the fleet
 * budget derive from that name, on the same task queue. It returns the drill's result and fails when
 * the drill fails (a schedule with `pauseOnFailure` then pauses).
 *
 * Cancelling the launcher cancels the drill and waits for its rollback (`WAIT_CANCELLATION_COMPLETED`).
 * When the launcher closes any other way (terminated, timed out) the server asks the drill to cancel
 * (`REQUEST_CANCEL`), so it still rolls back: `TERMINATE` would end it without its rollback, `ABANDON`
 * would leave it disrupting the Deployment unattended.
 */
export async function scheduledDrillWorkflow(input: ScheduledDrillInput): Promise<DrillResult> {
  const info = workflowInfo();
  const drillId = scheduledDrillId(input.scheduleId, info.startTime.getTime());
  const workflowId = drillWorkflowId(input.drill.clusterId, drillId);
  upsertSearchAttributes([{ key: CLUSTER_ID, value: input.drill.clusterId }]);
  setCurrentDetails(`drill **${drillId}** (workflow \`${workflowId}\`) of schedule \`${input.scheduleId}\``);
  return executeChild<typeof drillWorkflow>(DRILL_WORKFLOW, {
    workflowId,
    taskQueue: info.taskQueue,
    args: [{ ...input.drill, drillId }],
    cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
    // A drill ID names one run: never a second drill under a closed one's ID (and its report files).
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
  });
}
