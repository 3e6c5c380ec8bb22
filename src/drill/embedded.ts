import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1ObjectMeta,
  type V1PodDisruptionBudget,
  type V1Service,
} from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import path from 'node:path';
import { connectionOptions, type TemporalTarget } from '../client/temporal-connection.js';
import { ConfigError } from '../errors.js';
import { isApiError } from '../k8s/api-errors.js';
import { Notifier } from '../notify/notifier.js';
import { createControlMetrics } from '../observability/metrics.js';
import { isRunning } from '../stack/processes.js';
import type { StackState } from '../stack/state.js';
import { createControlWorkers, endFleetBudgetServedBy } from '../workers/control-worker.js';
import { createCheckpointActivities } from '../activities/checkpoint.js';
import { CHECKPOINT_WORKFLOW_TYPE } from '../checkpoint/schedule.js';
import { FilesystemStorage } from '../checkpoint/storage.js';
import type { CheckpointBackupInput, CheckpointBackupResult } from '../checkpoint/types.js';
import { renderInferenceManifest, type InferenceManifest } from '../inference/manifest.js';
import { findInference, type InferenceArtifacts } from '../toolchain/inference.js';
import { startServiceProxy, type RunningServiceProxy } from '../sim/service-proxy.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { DRILL_LABEL, gatewayManifests, standinManifests } from './standin-manifest.js';

/** What a drill on the embedded stack needs besides the stack: started by {@link startEmbeddedDrill}. */
export interface EmbeddedDrill {
  /** The Service in front of the gateway's pods, for the probe. */
  readonly targetUrl: string;
  /** The gateway's Deployment (its pods run `fleetmedic gateway serve`): the drill evicts one. */
  readonly gateway: { readonly deployment: string };
  /** The task queue of this process's control worker, where the drill workflow runs. */
  readonly taskQueue: string;
  /** Stops the worker (after the drill), then the Service in front of the gateway. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedDrill}. */
export interface EmbeddedDrillOptions {
  readonly stack: StackState;
  readonly stateDir: string;
  readonly kc: KubeConfig;
  readonly clusterId: string;
  readonly temporal: TemporalTarget;
  /** The control task queue; this process's worker polls `<taskQueue>-drill`. */
  readonly taskQueue: string;
  readonly namespace: string;
  readonly deployment: string;
  readonly drillId: string;
  readonly replicas: number;
  /**
   * `standin` (default): stand-in replicas, quick and model-free. `llama`: the chart's inference
   * Deployment as real llama.cpp replicas (the replica wrapper: model and slot restored from a
   * checkpoint store before Ready), the tiny model backed up and verified into that store first by the
   * checkpoint backup workflow; needs the inference toolchain in `cacheDir`.
   */
  readonly replicaKind?: 'standin' | 'llama';
  /** The toolchain cache (`FLEETMEDIC_CACHE_DIR`), for `llama`. */
  readonly cacheDir?: string;
  /** One line per step, for people. */
  readonly log: (line: string) => void;
  /** Where the worker's logs go (never stdout: the command's output stays clean). */
  readonly workerLog?: (entry: Record<string, unknown>) => void;
  /** How long the gateway pods have to serve behind the Service (default 90 s). */
  readonly gatewayReadyTimeoutMs?: number;
}

/**
 * The chart's inference Deployment, Service and PDB as the drill's (`helm template`, simulation on:
 * real llama.cpp replicas restoring from checkpoint store `store`), named `deployment` and labelled
 * with the drill's ID so that the drill adopts them and removes them at its end.
 */
async function llamaManifests(o: EmbeddedDrillOptions, store: string): Promise<InferenceManifest> {
  const m = await renderInferenceManifest({
    cacheDir: o.cacheDir ?? '',
    namespace: o.namespace,
    release: 'drill',
    replicas: o.replicas,
    preStopSeconds: 3,
    simulation: { model: 'tiny', checkpointStore: store },
  });
  const mark = <T extends { metadata?: V1ObjectMeta }>(obj: T): T => ({
    ...obj,
    metadata: {
      ...obj.metadata,
      name: o.deployment,
      namespace: o.namespace,
      labels: { ...obj.metadata?.labels, [DRILL_LABEL]: o.drillId },
    },
  });
  return { deployment: mark(m.deployment), service: mark(m.service), pdb: mark(m.pdb) };
}

/**
 * Everything a drill on the embedded stack needs, in this process, in the order it needs it: the
 * process runner must already run (`fleetmedic up` starts it); a control worker on a task queue of
 * its own, which runs the drill's workflow and activities; for `llama` replicas, a verified backup of
 * the model in the replicas' checkpoint store (the checkpoint backup workflow on that worker); the
 * Deployment, PDB and Service, created with the drill's label unless the Deployment exists (the drill
 * adopts them and removes them at its end); and a gateway watching the Deployment, on a free loopback
 * port (it reads the Deployment when it starts, so it comes last). `fleetmedic drill` without
 * `--target-url` uses it.
 */
export async function startEmbeddedDrill(o: EmbeddedDrillOptions): Promise<EmbeddedDrill> {
  if (!o.stack.runner || !(await isRunning(o.stack.runner.process))) {
    throw new ConfigError(
      'the process runner is not running, so no replica would ever turn Ready: run `fleetmedic up` (it starts the runner)',
    );
  }
  const llama = o.replicaKind === 'llama';
  let artifacts: InferenceArtifacts | undefined;
  if (llama) {
    const found = await findInference({ cacheDir: o.cacheDir ?? '' });
    if (found.missing !== undefined) {
      throw new ConfigError(
        `real llama.cpp replicas need the inference toolchain (${found.missing}): run \`npm run toolchain:inference\``,
      );
    }
    artifacts = found.artifacts;
  }
  const store = `drill-${o.deployment}`;

  let service: RunningServiceProxy | undefined;
  let workers: Worker[] = [];
  let running: Promise<unknown> | undefined;
  let native: NativeConnection | undefined;
  let clientConnection: Connection | undefined;
  let client: Client | undefined;
  /**
   * Removals of what this start created (Deployments, PDBs, Service), run in reverse order when the
   * start fails: the drill workflow that would remove them at its end never ran.
   */
  const undo: Array<{ what: string; remove: () => Promise<unknown> }> = [];
  const removeCreated = async () => {
    for (const { what, remove } of undo.reverse()) {
      await remove().catch((err: unknown) => {
        if (!isApiError(err, 404))
          o.log(`could not remove ${what}: ${(err as Error).message}; remove it by hand`);
      });
    }
  };
  const stop = async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await running?.catch(() => undefined);
    // The budget the drill's drain asked for, when this worker started it: nobody would serve it.
    if (client) {
      await endFleetBudgetServedBy({
        client,
        clusterId: o.clusterId,
        taskQueue: `${o.taskQueue}-drill`,
        by: 'fleetmedic drill',
      }).catch(() => undefined);
    }
    await native?.close().catch(() => undefined);
    await clientConnection?.close().catch(() => undefined);
    await service?.close();
  };
  try {
    native = await NativeConnection.connect(connectionOptions(o.temporal));
    clientConnection = await Connection.connect(connectionOptions(o.temporal));
    client = new Client({ connection: clientConnection, namespace: o.temporal.namespace });
    const taskQueue = `${o.taskQueue}-drill`;
    const log = o.workerLog ?? (() => undefined);
    workers = await createControlWorkers({
      connection: native,
      client,
      kc: o.kc,
      clusterId: o.clusterId,
      taskQueue,
      namespace: o.temporal.namespace,
      drillDir: path.join(o.stateDir, 'drills'),
      observability: {
        notifier: new Notifier({ sinks: [], log }),
        metrics: createControlMetrics(),
      },
      ...(artifacts && {
        // The checkpoint backup of the model the replicas restore, read from the toolchain's copy.
        extraActivities: createCheckpointActivities({
          storage: new FilesystemStorage(path.join(o.stateDir, 'checkpoints', store)),
          simulated: true,
          checkpointRoot: path.dirname(artifacts.tinyModel),
        }),
      }),
    });
    running = Promise.all(workers.map((w) => w.run()));
    running.catch(() => undefined);

    if (artifacts) {
      o.log(`backing up and verifying the model into checkpoint store ${store} (checkpoint backup workflow)`);
      const backup = await client.workflow.execute<
        (i: CheckpointBackupInput) => Promise<CheckpointBackupResult>
      >(CHECKPOINT_WORKFLOW_TYPE, {
        taskQueue,
        workflowId: `checkpoint/${o.clusterId}/${store}/${o.drillId}`,
        args: [
          {
            source: {
              kind: 'newest-file',
              directory: path.dirname(artifacts.tinyModel),
              suffix: '.gguf',
              settleMs: 0,
            },
            format: 'gguf',
            keep: 3,
          },
        ],
      });
      o.log(
        `checkpoint ${backup.name}: ${backup.outcome === 'unchanged' ? 'verified earlier, unchanged' : 'backed up and verified'}`,
      );
    }

    const apps = o.kc.makeApiClient(AppsV1Api);
    const existing = await apps
      .readNamespacedDeployment({ name: o.deployment, namespace: o.namespace })
      .catch((err: unknown) => {
        if (isApiError(err, 404)) return undefined;
        throw err;
      });
    if (!existing) {
      const { deployment, pdb, service } = llama
        ? await llamaManifests(o, store)
        : standinManifests({
            namespace: o.namespace,
            name: o.deployment,
            drillId: o.drillId,
            replicas: o.replicas,
          });
      o.log(
        `creating the ${llama ? 'llama.cpp' : 'stand-in'} Deployment ${o.namespace}/${o.deployment} (${o.replicas} replicas), its PDB and Service`,
      );
      await createWorkload({ deployment, pdb, service });
    }

    const gatewayName = `${o.deployment}-gateway`;
    const gatewayReplicas = 2;
    const gatewayExists = await apps
      .readNamespacedDeployment({ name: gatewayName, namespace: o.namespace })
      .then(
        () => true,
        (err: unknown) => {
          if (isApiError(err, 404)) return false;
          throw err;
        },
      );
    if (!gatewayExists) {
      const g = gatewayManifests({
        namespace: o.namespace,
        name: gatewayName,
        upstream: o.deployment,
        drillId: o.drillId,
        replicas: gatewayReplicas,
      });
      o.log(
        `creating the gateway Deployment ${o.namespace}/${gatewayName} (${gatewayReplicas} pods) and its PDB`,
      );
      await createWorkload({ deployment: g.deployment, pdb: g.pdb });
    }
    service = await startServiceProxy({
      kc: o.kc,
      namespace: o.namespace,
      deployment: gatewayName,
      targetPort: 8090,
    });
    await gatewayPodsReady(
      o,
      gatewayName,
      gatewayReplicas,
      () => service!.endpoints().length,
      o.gatewayReadyTimeoutMs ?? 90_000,
    );
    o.log(
      `gateway on ${service.url}: a Service in front of ${gatewayReplicas} gateway pods, which route to the Ready pods of ${o.namespace}/${o.deployment}`,
    );
    return { targetUrl: service.url, gateway: { deployment: gatewayName }, taskQueue, stop };
  } catch (err) {
    await stop();
    await removeCreated();
    throw err;
  }

  /**
   * Creates a Deployment, its PDB and (when given) its Service, one after another, remembering how
   * to remove each one created (see `undo`).
   */
  async function createWorkload(w: {
    deployment: V1Deployment;
    pdb: V1PodDisruptionBudget;
    service?: V1Service;
  }): Promise<void> {
    const namespace = o.namespace;
    const apps = o.kc.makeApiClient(AppsV1Api);
    const policy = o.kc.makeApiClient(PolicyV1Api);
    const core = o.kc.makeApiClient(CoreV1Api);
    const steps = [
      {
        kind: 'Deployment',
        name: w.deployment.metadata?.name ?? '',
        create: () => apps.createNamespacedDeployment({ namespace, body: w.deployment }),
        remove: (name: string) => apps.deleteNamespacedDeployment({ name, namespace }),
      },
      {
        kind: 'PodDisruptionBudget',
        name: w.pdb.metadata?.name ?? '',
        create: () => policy.createNamespacedPodDisruptionBudget({ namespace, body: w.pdb }),
        remove: (name: string) => policy.deleteNamespacedPodDisruptionBudget({ name, namespace }),
      },
      ...(w.service
        ? [
            {
              kind: 'Service',
              name: w.service.metadata?.name ?? '',
              create: () => core.createNamespacedService({ namespace, body: w.service! }),
              remove: (name: string) => core.deleteNamespacedService({ name, namespace }),
            },
          ]
        : []),
    ];
    for (const step of steps) {
      await step.create();
      undo.push({ what: `${step.kind} ${namespace}/${step.name}`, remove: () => step.remove(step.name) });
    }
  }
}

/**
 * Waits until `want` gateway pods serve behind the Service; a pod the process runner refused (a
 * runner older than the `gateway` kind, say) is named with its reason.
 */
async function gatewayPodsReady(
  o: EmbeddedDrillOptions,
  name: string,
  want: number,
  serving: () => number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (serving() < want) {
    if (Date.now() > deadline) {
      const pods = await o.kc
        .makeApiClient(CoreV1Api)
        .listNamespacedPod({ namespace: o.namespace, labelSelector: `app=${name}` })
        .catch(() => ({ items: [] }));
      const why = pods.items
        .map((p) => {
          const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
          return `${p.metadata?.name}: ${ready?.reason ?? p.status?.phase ?? 'unknown'}${ready?.message ? ` (${ready.message})` : ''}`;
        })
        .join('; ');
      throw new ConfigError(
        `the gateway pods of ${o.namespace}/${name} were not Ready within ${Math.round(timeoutMs / 1000)} s (${why || 'no pod'}): ` +
          'a process runner older than the gateway pods does not run them: restart the stack (`fleetmedic down`, then `fleetmedic up`)',
      );
    }
    await sleep(250);
  }
}
