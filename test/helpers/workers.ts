import type { KubeConfig } from '@kubernetes/client-node';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import type { TemporalConnectionOptions } from '../../src/client/temporal-connection.js';
import type { FleetBudgetConfig } from '../../src/domain/fleet-budget.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import type { NotifyConfig } from '../../src/notify/config.js';
import { setupControlObservability, type ControlObservability } from '../../src/observability/setup.js';
import type { GpuStateStore } from '../../src/sim/gpu-state.js';
import { simulatedRunner } from '../../src/sim/sim-runner.js';
import { simulatedBoot } from '../../src/k8s/boot-id.js';
import { createControlWorkers, workflowBundleOptions } from '../../src/workers/control-worker.js';
import { createNodeAgentWorkers } from '../../src/workers/node-agent-host.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { statusQuery, type RemediationStatus } from '../../src/contracts/remediation.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import { budgetSettingsConfigMap, DEFAULT_SETTINGS_NAMESPACE } from '../../src/k8s/budget-settings.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import { clients, eventually } from './k8s.js';
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

/**
 * Names a kubeconfig file for the control worker in place of the stack's admin one: the chart's RBAC
 * test (test/charts/rbac.e2e.test.ts) runs the remediation e2e suite with the worker's ServiceAccount.
 */
export const TEST_WORKER_KUBECONFIG_ENV = 'FLEETMEDIC_TEST_WORKER_KUBECONFIG';
/**
 * The namespace of the fleet budget's settings ConfigMap for the control worker (default `default`):
 * the chart's RBAC test sets the release namespace, where the worker's identity may write ConfigMaps.
 */
export const TEST_SETTINGS_NAMESPACE_ENV = 'FLEETMEDIC_TEST_SETTINGS_NAMESPACE';
const settingsNamespace = () => process.env[TEST_SETTINGS_NAMESPACE_ENV] ?? DEFAULT_SETTINGS_NAMESPACE;

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
    /** Another Temporal than the stack's dev server (the mutual-TLS test), and its namespace. */
    temporal?: { options: TemporalConnectionOptions; namespace: string };
    /** The control worker's identity; default the file named by TEST_WORKER_KUBECONFIG_ENV, else `stack.kc`. */
    kc?: KubeConfig;
  },
): Promise<RemediationWorkers> {
  const workerFile = process.env[TEST_WORKER_KUBECONFIG_ENV];
  const kc = options.kc ?? (workerFile ? loadKubeConfig(workerFile) : stack.kc);
  const temporal = options.temporal?.options ?? { address: stack.state.temporal.address };
  const namespace = options.temporal?.namespace ?? 'default';
  const connection = await NativeConnection.connect(temporal);
  const clientConnection = await Connection.connect(temporal);
  const client = new Client({ connection: clientConnection, namespace });
  const clusterId = stack.state.clusterId;
  const nodes = (await clients(stack.kc).core.listNode()).items.map((n) => n.metadata!.name!);
  const boot = simulatedBoot(stack.kc);
  // Each test file starts with a budget of its own: no pause or open breaker of an earlier file.
  await forgetBudgetSettings(stack.kc, clusterId);
  // Wired the way `fleetmedic worker` wires them.
  const observability = await setupControlObservability({
    kc,
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
      kc,
      clusterId,
      taskQueue: options.taskQueue,
      namespace,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
      budgetConfig: options.budgetConfig,
      settingsNamespace: settingsNamespace(),
      observability,
    })),
    ...(await createNodeAgentWorkers({
      connection,
      namespace,
      clusterId,
      nodes,
      runnerFor: (n) => simulatedRunner(options.gpus, n, boot),
      readBootId: boot.read,
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
      await forgetBudgetSettings(stack.kc, clusterId);
      for (const w of workers) w.shutdown();
      await running;
      await observability.close();
      await clientConnection.close();
      await connection.close();
    },
  };
}

/** Ends the open remediations of `nodes` (a test file's own nodes, when it ends): none is left for the next file. */
export async function terminateRemediations(
  client: Client | undefined,
  clusterId: string,
  nodes: readonly string[],
): Promise<void> {
  for (const name of nodes)
    await client?.workflow
      .getHandle(remediationWorkflowId(clusterId, name))
      .terminate('test finished')
      .catch(() => undefined);
}

/** Deletes the fleet budget's settings ConfigMap (what a restarted budget would read its pause from). */
export async function forgetBudgetSettings(kc: KubeConfig, clusterId: string): Promise<void> {
  await clients(kc)
    .core.deleteNamespacedConfigMap({
      name: budgetSettingsConfigMap(clusterId),
      namespace: settingsNamespace(),
    })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== 404) throw err;
    });
}

/** Waits until the remediation's status query reports `phase`, and returns that status. */
export function waitForPhase(
  handle: WorkflowHandle<typeof gpuRemediationWorkflow>,
  phase: string,
  timeoutMs = 60_000,
): Promise<RemediationStatus> {
  return eventually(
    `phase ${phase}`,
    async () => {
      const s = await handle.query(statusQuery);
      return s.phase === phase ? s : undefined;
    },
    timeoutMs,
  );
}
