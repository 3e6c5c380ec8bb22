import { AppsV1Api, CoreV1Api, PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import path from 'node:path';
import { connectionOptions, type TemporalTarget } from '../client/temporal-connection.js';
import { ConfigError } from '../errors.js';
import { parseGatewayConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { isApiError } from '../k8s/api-errors.js';
import { Notifier } from '../notify/notifier.js';
import { createControlMetrics } from '../observability/metrics.js';
import { isRunning } from '../stack/processes.js';
import type { StackState } from '../stack/state.js';
import { createControlWorkers } from '../workers/control-worker.js';
import { standinManifests } from './standin-manifest.js';

/** What a drill on the embedded stack needs besides the stack: started by {@link startEmbeddedDrill}. */
export interface EmbeddedDrill {
  /** The gateway in front of the Deployment, for the probe. */
  readonly targetUrl: string;
  /** The task queue of this process's control worker, where the drill workflow runs. */
  readonly taskQueue: string;
  /** Stops the worker (after the drill), then the gateway. */
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
  /** One line per step, for people. */
  readonly log: (line: string) => void;
  /** Where the worker's logs go (never stdout: the command's output stays clean). */
  readonly workerLog?: (entry: Record<string, unknown>) => void;
}

/**
 * Everything a drill on the embedded stack needs, in this process, in the order it needs it: the
 * process runner must already run (`fleetmedic up` starts it); the stand-in Deployment, PDB and
 * Service are created with the drill's label (the drill adopts them and removes them at its end);
 * a gateway watching the Deployment, on a free loopback port (it reads the Deployment when it starts,
 * so it comes after); and a control worker on a task queue of its own, which runs the drill's
 * workflow and activities. `fleetmedic drill` without `--target-url` uses it.
 */
export async function startEmbeddedDrill(o: EmbeddedDrillOptions): Promise<EmbeddedDrill> {
  if (!o.stack.runner || !(await isRunning(o.stack.runner.process))) {
    throw new ConfigError(
      'the process runner is not running, so no stand-in replica would ever turn Ready: run `fleetmedic up` (it starts the runner)',
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
    const { deployment, pdb, service } = standinManifests({
      namespace: o.namespace,
      name: o.deployment,
      drillId: o.drillId,
      replicas: o.replicas,
    });
    o.log(
      `creating the stand-in Deployment ${o.namespace}/${o.deployment} (${o.replicas} replicas), its PDB and Service`,
    );
    await apps.createNamespacedDeployment({ namespace: o.namespace, body: deployment });
    await o.kc
      .makeApiClient(PolicyV1Api)
      .createNamespacedPodDisruptionBudget({ namespace: o.namespace, body: pdb });
    await o.kc.makeApiClient(CoreV1Api).createNamespacedService({ namespace: o.namespace, body: service });
  }

  let gateway: RunningGateway | undefined;
  let workers: Worker[] = [];
  let running: Promise<unknown> | undefined;
  let native: NativeConnection | undefined;
  let clientConnection: Connection | undefined;
  const stop = async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await running?.catch(() => undefined);
    await native?.close().catch(() => undefined);
    await clientConnection?.close().catch(() => undefined);
    await gateway?.close();
  };
  try {
    gateway = await startGateway(
      parseGatewayConfig({
        port: 0,
        kube: { namespace: o.namespace, deployment: o.deployment, kubeconfig: o.stack.kube.kubeconfig },
        health: { intervalMs: 500 },
      }),
    );
    o.log(`gateway on ${gateway.url}, in front of the Ready pods of ${o.namespace}/${o.deployment}`);
    native = await NativeConnection.connect(connectionOptions(o.temporal));
    clientConnection = await Connection.connect(connectionOptions(o.temporal));
    const client = new Client({ connection: clientConnection, namespace: o.temporal.namespace });
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
    });
    running = Promise.all(workers.map((w) => w.run()));
    running.catch(() => undefined);
    return { targetUrl: gateway.url, taskQueue, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
