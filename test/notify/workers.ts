import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import { REMEDIATIONS_ANNOTATION } from '../../src/k8s/remediation-labels.js';
import { EPISODES_ANNOTATION } from '../../src/activities/remediation-support.js';
import type { FleetBudgetConfig } from '../../src/domain/fleet-budget.js';
import { mergePatch } from '../../src/k8s/patch.js';
import type { NotifyConfig } from '../../src/notify/config.js';
import { setupControlObservability, type ControlObservability } from '../../src/observability/setup.js';
import type { GpuStateStore } from '../../src/sim/gpu-state.js';
import { simulatedRunner } from '../../src/sim/sim-runner.js';
import { createControlWorker, workflowsPath } from '../../src/workers/control-worker.js';
import { createNodeAgentWorkers } from '../../src/workers/node-agent-host.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { clients } from '../helpers/k8s.js';
import type { TestStack } from '../helpers/stack.js';

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * Like test/helpers/workers.ts, plus what these tests observe: the control worker gets notification
 * sinks and metrics (served on 127.0.0.1 when `metricsPort` is given), wired the way `fleetmedic
 * worker` wires them.
 */
export async function startObservedWorkers(
  stack: TestStack,
  options: {
    taskQueue: string;
    gpus: GpuStateStore;
    budgetConfig?: Partial<FleetBudgetConfig>;
    notify?: NotifyConfig;
    metricsPort?: number;
  },
) {
  const connection = await NativeConnection.connect({ address: stack.state.temporal.address });
  const clientConnection = await Connection.connect({ address: stack.state.temporal.address });
  const client = new Client({ connection: clientConnection });
  const clusterId = stack.state.clusterId;
  const nodes = (await clients(stack.kc).core.listNode()).items.map((n) => n.metadata!.name!);
  // A reused stack keeps the nodes' remediation history: start from none, or the repeat guard
  // (twice in 7 days -> replace hardware) would change these scenarios.
  for (const name of nodes) {
    await clients(stack.kc).core.patchNode(
      {
        name,
        body: { metadata: { annotations: { [REMEDIATIONS_ANNOTATION]: null, [EPISODES_ANNOTATION]: null } } },
      },
      mergePatch,
    );
  }
  const observability: ControlObservability = await setupControlObservability({
    kc: stack.kc,
    client,
    clusterId,
    ...(options.notify && { notify: options.notify }),
    uiUrl: stack.state.temporal.uiUrl,
    ...(options.metricsPort !== undefined && { metricsPort: options.metricsPort }),
    defaultMetrics: false,
  });
  const workers: Worker[] = [
    await createControlWorker({
      connection,
      client,
      kc: stack.kc,
      clusterId,
      taskQueue: options.taskQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: silent }),
      budgetConfig: options.budgetConfig,
      observability,
    }),
    ...(await createNodeAgentWorkers({
      connection,
      clusterId,
      nodes,
      runnerFor: (n) => simulatedRunner(options.gpus, n),
    })),
  ];
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    client,
    nodes,
    observability,
    async stop() {
      await client.workflow
        .getHandle(fleetBudgetWorkflowId(clusterId))
        .terminate('test finished')
        .catch(() => {});
      for (const w of workers) w.shutdown();
      await running;
      await observability.close();
      await clientConnection.close();
      await connection.close();
    },
  };
}
