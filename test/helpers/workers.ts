import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import type { FleetBudgetConfig } from '../../src/domain/fleet-budget.js';
import type { NotifyConfig } from '../../src/notify/config.js';
import { setupControlObservability, type ControlObservability } from '../../src/observability/setup.js';
import type { GpuStateStore } from '../../src/sim/gpu-state.js';
import { simulatedRunner } from '../../src/sim/sim-runner.js';
import { createControlWorkers, workflowsPath } from '../../src/workers/control-worker.js';
import { createNodeAgentWorkers } from '../../src/workers/node-agent-host.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { clients } from './k8s.js';
import type { TestStack } from './stack.js';

/** A control worker and simulated node agents for every node of the test stack, running in this process. */
export interface RemediationWorkers {
  readonly connection: NativeConnection;
  readonly client: Client;
  readonly nodes: readonly string[];
  /** The control worker's notifier and metrics (and their endpoint when `metricsPort` was given). */
  readonly observability: ControlObservability;
  /** Stops the workers, terminates the cluster's fleet budget and closes the connections. */
  stop(): Promise<void>;
}

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export async function startRemediationWorkers(
  stack: TestStack,
  options: {
    taskQueue: string;
    gpus: GpuStateStore;
    budgetConfig?: Partial<FleetBudgetConfig>;
    /** Notification sinks of the control worker; without them notifications are only logged. */
    notify?: NotifyConfig;
    /** Serve the control worker's metrics on 127.0.0.1 (0 = any free port). */
    metricsPort?: number;
  },
): Promise<RemediationWorkers> {
  const connection = await NativeConnection.connect({ address: stack.state.temporal.address });
  const clientConnection = await Connection.connect({ address: stack.state.temporal.address });
  const client = new Client({ connection: clientConnection });
  const clusterId = stack.state.clusterId;
  const nodes = (await clients(stack.kc).core.listNode()).items.map((n) => n.metadata!.name!);
  // Wired the way `fleetmedic worker` wires them.
  const observability = await setupControlObservability({
    kc: stack.kc,
    client,
    clusterId,
    ...(options.notify && { notify: options.notify }),
    uiUrl: stack.state.temporal.uiUrl,
    ...(options.metricsPort !== undefined && { metricsPort: options.metricsPort }),
    defaultMetrics: false,
  });
  const workers: Worker[] = [
    ...(await createControlWorkers({
      connection,
      client,
      kc: stack.kc,
      clusterId,
      taskQueue: options.taskQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: silent }),
      budgetConfig: options.budgetConfig,
      observability,
    })),
    ...(await createNodeAgentWorkers({
      connection,
      clusterId,
      nodes,
      runnerFor: (n) => simulatedRunner(options.gpus, n),
    })),
  ];
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    connection,
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
