import type { KubeConfig } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  Runtime,
  Worker,
  bundleWorkflowCode,
  type InjectedSinks,
  type NativeConnection,
  type WorkerOptions,
  type ActivityInterceptorsFactory,
} from '@temporalio/worker';
import { constants } from 'node:fs';
import os from 'node:os';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDrillActivities } from '../activities/drill/index.js';
import { createKubernetesActivities, createQuarantineSteps } from '../activities/kubernetes/index.js';
import { createNodeRecordActivities } from '../activities/node-records.js';
import { createObservabilityActivities } from '../activities/observability.js';
import { createQuarantineActivities } from '../activities/quarantine.js';
import { createRemediationSupportActivities } from '../activities/remediation-support/index.js';
import {
  DEFAULT_FLEET_BUDGET,
  validateFleetBudgetConfig,
  type FleetBudgetConfig,
} from '../domain/fleet-budget.js';
import { ConfigError } from '../errors.js';
import { Notifier } from '../notify/notifier.js';
import { createControlMetrics, type ControlMetrics } from '../observability/metrics.js';
import { createPhaseEventRecorder } from '../observability/phase-event-recorder.js';
import type { PhaseEventSinks } from '../contracts/remediation.js';
import { fleetBudgetWorkflowId } from '../contracts/fleet-budget.js';
import { budgetTaskQueue } from '../contracts/ids.js';
import { clusterGuard } from './cluster-guard.js';
import { bindClusterIdentity } from '../client/cluster-identity.js';
import { createFleetBudgetRecordActivities } from '../activities/fleet-budget-records.js';
import { DEFAULT_SETTINGS_NAMESPACE } from '../k8s/budget-settings.js';
import {
  createDrillReaper,
  DEFAULT_DRILL_REAPER_INTERVAL_MS,
  describeDrillRuns,
  startDrillReaper,
} from '../drill/reaper.js';

export interface ControlWorkerOptions {
  readonly connection: NativeConnection;
  readonly client: Client;
  readonly kc: KubeConfig;
  readonly clusterId: string;
  readonly taskQueue: string;
  readonly namespace?: string;
  /**
   * A prebuilt bundle: `{ codePath }` in production (see `prebuiltWorkflowBundle`), `{ code }` when
   * tests build it once per file; without it the worker bundles the workflows at start.
   */
  readonly workflowBundle?: WorkerOptions['workflowBundle'];
  /** Fleet budget limits used when this worker starts the cluster's budget workflow. */
  readonly budgetConfig?: Partial<FleetBudgetConfig>;
  /**
   * Selectors of the GPU DaemonSets that must run on a node before release
   * (`FLEETMEDIC_GPU_DAEMONSET_SELECTORS`); default `DEFAULT_GPU_DAEMONSET_SELECTORS`.
   */
  readonly gpuDaemonSetSelectors?: readonly string[];
  /**
   * Namespace of the fleet budget's settings ConfigMap (`FLEETMEDIC_SETTINGS_NAMESPACE`); default
   * `default`. The chart sets its release namespace.
   */
  readonly settingsNamespace?: string;
  /**
   * Notification sinks and metrics (see `setupControlObservability`); without them notifications are
   * only logged and the metrics go to a registry nobody serves.
   */
  readonly observability?: { readonly notifier: Notifier; readonly metrics: ControlMetrics };
  /**
   * Directory of the drill's probe files and reports (`<state dir>/drills`); without it the drill
   * activities write under the system's temporary directory.
   */
  readonly drillDir?: string;
  /**
   * Time between two passes of the drill reaper the control worker runs while it runs
   * (`FLEETMEDIC_DRILL_REAPER_INTERVAL_SECONDS`); default `DEFAULT_DRILL_REAPER_INTERVAL_MS`.
   */
  readonly drillReaperIntervalMs?: number;
  /** Extra activities (checkpointing, drills) registered beside the cluster ones. */
  readonly extraActivities?: Record<string, (...args: never[]) => Promise<unknown>>;
  /**
   * Activity interceptors run after the cluster guard on the control worker (tests: end the process
   * right after a side effect, before its completion is recorded).
   */
  readonly activityInterceptors?: readonly ActivityInterceptorsFactory[];
  /** Overrides of the control worker's slot and poller settings (`CONTROL_WORKER_TUNING`); benchmarks only. */
  readonly tuning?: Partial<ControlWorkerTuning>;
}

export type ControlWorkerTuning = Pick<
  WorkerOptions,
  | 'maxConcurrentWorkflowTaskExecutions'
  | 'maxConcurrentLocalActivityExecutions'
  | 'maxConcurrentActivityTaskExecutions'
  | 'workflowTaskPollerBehavior'
  | 'nonStickyToStickyPollRatio'
>;

/**
 * Slots and pollers of the control worker. A remediation holds its first workflow task open while
 * its local activities run (episode check, breaker report, cordon: mostly waiting on the API server
 * and the budget), so a storm needs more workflow task slots than the SDK's 40; and new workflows
 * arrive on the shared (non-sticky) queue, which the SDK gives 2 of its 10 pollers. With these, the
 * first workflow task of 150 remediations started at once waited about 1 s (median) and 1.2-2.2 s
 * (p99) for the worker, against 1.4 s and 6-7 s with 100 slots and 8 of 16 pollers
 * (bench:remediation, several runs each).
 */
export const CONTROL_WORKER_TUNING: ControlWorkerTuning = {
  maxConcurrentWorkflowTaskExecutions: 200,
  maxConcurrentLocalActivityExecutions: 400,
  maxConcurrentActivityTaskExecutions: 100,
  workflowTaskPollerBehavior: { type: 'simple-maximum', maximum: 24 },
  nonStickyToStickyPollRatio: 0.8,
};

/** Path of the workflows entry for the bundler, whether running from src (tsx) or dist (compiled). */
export function workflowsPath(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), '..', 'workflows', `index${path.extname(here)}`);
}

/** The workflow interceptors module (each activity carries its run's cluster ID). */
export function workflowInterceptorsPath(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), '..', 'workflows', `interceptors${path.extname(here)}`);
}

/** What `bundleWorkflowCode` needs for fleetmedic's workflows: every bundle is made with these. */
export function workflowBundleOptions() {
  return { workflowsPath: workflowsPath(), workflowInterceptorModules: [workflowInterceptorsPath()] };
}

/**
 * The workflow bundle at `codePath` (`FLEETMEDIC_WORKFLOW_BUNDLE`, written by `npm run build:bundle`),
 * checked before any worker starts so that a wrong path fails at once, naming the variable. A prebuilt
 * bundle spares each start the webpack run (seconds of CPU, and the bundler's dependencies in the image).
 *
 * @param codePath absolute path of the bundle's JavaScript file.
 * @throws ConfigError when the file cannot be read.
 * @example
 * const workflowBundle = await prebuiltWorkflowBundle('/app/dist/workflow-bundle.js');
 */
export async function prebuiltWorkflowBundle(codePath: string): Promise<{ readonly codePath: string }> {
  try {
    await access(codePath, constants.R_OK);
  } catch (err) {
    throw new ConfigError(
      `FLEETMEDIC_WORKFLOW_BUNDLE=${JSON.stringify(codePath)}: expected a readable workflow bundle ` +
        `(npm run build:bundle writes one): ${(err as Error).message}`,
    );
  }
  return { codePath };
}

/**
 * The control workers, both on `options.connection`: the control worker (every workflow plus the
 * cluster activities: Kubernetes API, fleet budget, the node's records of handled episodes and holds,
 * node Events and notifications) on the `fleetmedic` task queue, and the fleet budget's own worker on
 * `budgetTaskQueue(taskQueue)`. Node-local steps run on the node agents' own queues. Run (and shut
 * down) all of them; the control worker is the first.
 *
 * Before any worker exists, the cluster ID is bound to the cluster `kc` reaches (`bindClusterIdentity`):
 * a kubeconfig of another cluster under a bound cluster ID is refused with a ConfigError. Every worker
 * refuses activities of another cluster's runs (`clusterGuard`).
 */
export async function createControlWorkers(options: ControlWorkerOptions): Promise<Worker[]> {
  // A budget the budget workflow would refuse must stop the worker now: started with it, the budget
  // workflow fails at once and every remediation's budget call would retry against a closed workflow.
  const invalidBudget = validateFleetBudgetConfig({ ...DEFAULT_FLEET_BUDGET, ...options.budgetConfig });
  if (invalidBudget) throw new ConfigError(`invalid fleet budget for the control worker: ${invalidBudget}`);
  const kubernetes = createKubernetesActivities({
    kc: options.kc,
    clusterId: options.clusterId,
    gpuDaemonSetSelectors: options.gpuDaemonSetSelectors,
  });
  const support = createRemediationSupportActivities({
    kc: options.kc,
    client: options.client,
    clusterId: options.clusterId,
    taskQueue: budgetTaskQueue(options.taskQueue),
    budgetConfig: options.budgetConfig,
  });
  const metrics = options.observability?.metrics ?? createControlMetrics({ defaultMetrics: false });
  const events = createPhaseEventRecorder({
    kc: options.kc,
    clusterId: options.clusterId,
    metrics,
    logger: Runtime.instance().logger,
  });
  const sinks: InjectedSinks<PhaseEventSinks> = {
    phaseEvents: { record: { fn: (_info, change) => events.record(change), callDuringReplay: false } },
  };
  const activities = {
    ...kubernetes,
    ...support,
    ...createQuarantineActivities({
      support,
      kubernetes,
      steps: createQuarantineSteps({ kc: options.kc, clusterId: options.clusterId }),
    }),
    ...createNodeRecordActivities({ kc: options.kc, clusterId: options.clusterId }),
    ...createFleetBudgetRecordActivities({
      kc: options.kc,
      client: options.client,
      clusterId: options.clusterId,
      settingsNamespace: options.settingsNamespace ?? DEFAULT_SETTINGS_NAMESPACE,
    }),
    ...createObservabilityActivities({
      kc: options.kc,
      clusterId: options.clusterId,
      notifier: options.observability?.notifier ?? new Notifier({ sinks: [] }),
      metrics,
    }),
    ...createDrillActivities({
      kc: options.kc,
      clusterId: options.clusterId,
      drillDir: options.drillDir ?? path.join(os.tmpdir(), 'fleetmedic-drills'),
    }),
    ...options.extraActivities,
  };
  // After every check of the configuration, before any worker: never the wrong cluster.
  // The cluster ID is bound to this kubeconfig's cluster at first use.
  await bindClusterIdentity({
    client: options.client,
    kc: options.kc,
    clusterId: options.clusterId,
    taskQueue: options.taskQueue,
  });
  const workflowBundle =
    options.workflowBundle ??
    (await bundleWorkflowCode({ ...workflowBundleOptions(), logger: Runtime.instance().logger }));
  const namespace = options.namespace ?? 'default';
  const control = await Worker.create({
    connection: options.connection,
    namespace,
    taskQueue: options.taskQueue,
    activities,
    workflowBundle,
    sinks,
    interceptors: { activity: [clusterGuard(options.clusterId), ...(options.activityInterceptors ?? [])] },
    ...CONTROL_WORKER_TUNING,
    ...options.tuning,
  });
  const reaper = createDrillReaper({
    kc: options.kc,
    clusterId: options.clusterId,
    describe: describeDrillRuns(options.client),
  });
  runDrillReaperWith(control, {
    reap: () => reaper.reap(),
    intervalMs: options.drillReaperIntervalMs ?? DEFAULT_DRILL_REAPER_INTERVAL_MS,
    logger: Runtime.instance().logger,
  });
  // One long-lived workflow per cluster: a few slots, no activities.
  const budget = await Worker.create({
    connection: options.connection,
    namespace,
    taskQueue: budgetTaskQueue(options.taskQueue),
    workflowBundle,
    maxConcurrentWorkflowTaskExecutions: 4,
    maxCachedWorkflows: 8,
    workflowTaskPollerBehavior: { type: 'simple-maximum', maximum: 4 },
  });
  return [control, budget];
}

/**
 * Ties the drill reaper to `worker.run()`: a pass when it starts, then every interval, stopped (and
 * its pass in progress awaited) when the run ends. Every caller runs the control worker through
 * `run()`, so none has to start or stop the reaper, and a worker created but never run starts nothing.
 */
function runDrillReaperWith(worker: Worker, reaper: Parameters<typeof startDrillReaper>[0]): void {
  const run = worker.run.bind(worker);
  worker.run = async () => {
    const loop = startDrillReaper(reaper);
    try {
      await run();
    } finally {
      await loop.stop();
    }
  };
}

/**
 * Ends the cluster's fleet budget when it runs on the budget queue of `taskQueue`, the control queue
 * of a process that is about to exit (the demo, the embedded drill). The budget stays on the queue of
 * the worker that started it: left running there, it would wait for a worker that never comes back,
 * and every later request for a drain slot with it. What the budget must keep survives it (the pause
 * and an open breaker are in the cluster's settings object, the drains in the nodes' records): the
 * next worker that needs a budget starts it again and it rebuilds itself from the cluster. A budget on
 * another queue (a `fleetmedic worker`'s) is left alone.
 *
 * @returns true when it ended one.
 */
export async function endFleetBudgetServedBy(options: {
  readonly client: Client;
  readonly clusterId: string;
  readonly taskQueue: string;
  /** Who ends it, for the termination's reason. */
  readonly by: string;
}): Promise<boolean> {
  const handle = options.client.workflow.getHandle(fleetBudgetWorkflowId(options.clusterId));
  const desc = await handle.describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (desc?.status.name !== 'RUNNING' || desc.taskQueue !== budgetTaskQueue(options.taskQueue)) return false;
  await handle.terminate(
    `${options.by} exits and no worker would serve its queue; the next worker starts the budget again from the cluster`,
  );
  return true;
}
