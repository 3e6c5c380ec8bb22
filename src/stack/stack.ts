import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { StackError } from '../errors.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { resolveToolchain } from '../toolchain/toolchain.js';
import {
  createKwokCluster,
  kwokClusterDir,
  kwokClusterProcesses,
  kwokComponentLog,
  kwokKubeconfigPath,
  startKwokCluster,
  stopKwokCluster,
  deleteKwokCluster,
  type KwokClusterOptions,
  type KwokClusterRef,
  type KwokPorts,
} from './kwok-cluster.js';
import { processRunnerStages, readKwokDefaultStages } from './kwok-stages.js';
import { FLEETMEDIC_BIN } from '../cli/bin-path.js';
import {
  assertPortsFree,
  isRunning,
  pickFreePorts,
  startDetached,
  stopProcess,
  tailFile,
  waitFor,
  type ManagedProcess,
} from './processes.js';
import {
  ensureSimNodes,
  ensureSimulationMarker,
  readySimNodes,
  assertSimulatedCluster,
} from './sim-cluster.js';
import {
  readStackState,
  removeStackState,
  withStateLock,
  writeStackState,
  type StackState,
} from './state.js';
import { startTemporalServer, stopTemporalServer, temporalHealthy } from './temporal-server.js';

/** Ports of the embedded stack; all bound to 127.0.0.1. */
export interface StackPorts extends KwokPorts {
  readonly temporal: number;
  readonly temporalUi: number;
  readonly temporalHttp: number;
  readonly temporalMetrics: number;
}

/** Default ports: Temporal's usual ones, the API server on 6443, the rest in kwokctl's range. */
export const DEFAULT_PORTS: StackPorts = Object.freeze({
  temporal: 7233,
  temporalUi: 8233,
  temporalHttp: 7243,
  temporalMetrics: 7244,
  apiserver: 6443,
  etcd: 32379,
  etcdPeer: 32380,
  controllerManager: 32257,
  scheduler: 32259,
  kwokController: 32247,
});

/** What each port is for, in error messages. */
const PORT_COMPONENTS: Record<keyof StackPorts, string> = {
  temporal: 'Temporal frontend',
  temporalUi: 'Temporal UI',
  temporalHttp: 'Temporal HTTP API',
  temporalMetrics: 'Temporal metrics',
  apiserver: 'kube-apiserver',
  etcd: 'etcd (client)',
  etcdPeer: 'etcd (peer)',
  controllerManager: 'kube-controller-manager',
  scheduler: 'kube-scheduler',
  kwokController: 'kwok-controller',
};

export const DEFAULT_CLUSTER_NAME = 'fleetmedic';

/** Free ports for every component, for a stack beside others (tests, benchmarks). */
export async function pickStackPorts(): Promise<StackPorts> {
  const keys = Object.keys(PORT_COMPONENTS) as Array<keyof StackPorts>;
  const ports = await pickFreePorts(keys.length);
  return Object.fromEntries(keys.map((k, i) => [k, ports[i]!])) as unknown as StackPorts;
}

export interface UpOptions {
  readonly nodes: number;
  readonly ports?: Partial<StackPorts>;
  /** kwok cluster name; also the cluster ID unless the configuration sets one. */
  readonly clusterName?: string;
  /**
   * Start the process runner too (`fleetmedic runner`, detached, stopped by `down`): pods labelled
   * `fleetmedic.io/process` get real local processes. `fleetmedic up` does; tests that run a runner of
   * their own do not (two runners would both serve each pod).
   */
  readonly runner?: boolean;
  readonly log?: (line: string) => void;
  /**
   * Ends the start early (Ctrl-C): whatever it had started is stopped, no record is left, and `up`
   * rejects with a StackError saying it was interrupted.
   */
  readonly signal?: AbortSignal;
}

export type UpResult =
  | { readonly outcome: 'started'; readonly state: StackState; readonly seconds: number }
  | { readonly outcome: 'already-running'; readonly state: StackState };

/**
 * Starts the embedded stack (Temporal dev server + kwok cluster with simulated GPU nodes) and waits
 * until it is ready: API server healthy, all nodes Ready, Temporal answering. A second `up` reports the
 * running stack; an `up` after a crash stops what is left of the old one and starts again on the same
 * state (the Temporal database and the cluster's etcd data survive).
 */
export async function up(config: Config, options: UpOptions): Promise<UpResult> {
  const log = options.log ?? (() => {});
  return withStateLock(config.stateDir, async () => {
    const previous = await readStackState(config.stateDir);
    if (previous) {
      const health = await stackHealth(previous);
      if (health.healthy) {
        if (!options.runner || (previous.runner && (await isRunning(previous.runner.process)))) {
          return { outcome: 'already-running', state: previous };
        }
        // The runner alone died (or was never started): start it again; the pods it serves restart.
        const state = { ...previous, runner: await startRunner(config, log) };
        await writeStackState(config.stateDir, state);
        return { outcome: 'already-running', state };
      }
      log(`found a stack that is not healthy (${health.problems.join('; ')}): stopping what is left of it`);
      await stopStack(previous, log);
    }
    const started = Date.now();
    const tools = await resolveToolchain({ cacheDir: config.cacheDir });
    const ports = { ...DEFAULT_PORTS, ...(previous ? portsOf(previous) : {}), ...options.ports };
    const clusterName = options.clusterName ?? previous?.clusterName ?? DEFAULT_CLUSTER_NAME;
    const clusterId = config.clusterId ?? clusterName;
    await assertPortsFree(
      (Object.keys(PORT_COMPONENTS) as Array<keyof StackPorts>).map((key) => ({
        component: PORT_COMPONENTS[key],
        port: ports[key],
      })),
    );
    const kwok: KwokClusterOptions = {
      name: clusterName,
      workdir: path.join(config.stateDir, 'kwok'),
      ports,
      kwokctl: tools.kwokctl.path,
      tools,
      stages: processRunnerStages(await readKwokDefaultStages(config.cacheDir)),
    };
    const signal = options.signal;
    const interrupted = () => (signal?.aborted ? 'interrupted' : undefined);
    if (signal?.aborted) throw new StackError('fleetmedic up: interrupted before anything started');
    log(`starting Temporal dev server on 127.0.0.1:${ports.temporal} and cluster ${clusterName}`);
    const temporalPromise = startTemporalServer({
      binary: tools.temporal.path,
      dataDir: path.join(config.stateDir, 'temporal'),
      port: ports.temporal,
      uiPort: ports.temporalUi,
      httpPort: ports.temporalHttp,
      metricsPort: ports.temporalMetrics,
      namespace: config.temporalNamespace,
      ...(signal && { signal }),
    });
    // Keep a rejection from going unhandled while the cluster starts.
    temporalPromise.catch(() => {});
    try {
      if (await exists(kwokClusterDir(kwok))) {
        await startKwokCluster(kwok, log, signal).catch(async (err: unknown) => {
          if (signal?.aborted) throw err;
          log(`restarting the existing cluster failed (${(err as Error).message}); recreating it`);
          await deleteKwokCluster(kwok);
          await createKwokCluster(kwok, log, signal);
        });
      } else {
        await createKwokCluster(kwok, log, signal);
      }
      const kubeconfig = kwokKubeconfigPath(kwok);
      const kc = loadKubeConfig(kubeconfig);
      await ensureSimulationMarker(kc, clusterId);
      await ensureSimNodes(kc, options.nodes, clusterId);
      // Ready and untainted by the controller manager (see readySimNodes). Each check lists every
      // node: a large simulation is checked less often, and given more time.
      await waitFor(
        `${options.nodes} simulated nodes Ready`,
        async () => (await readySimNodes(kc)).length >= options.nodes,
        {
          timeoutMs: 60_000 + options.nodes * 40,
          intervalMs: options.nodes > 100 ? 1_000 : 250,
          abortIf: () => Promise.resolve(interrupted()),
        },
      );
      const temporal = await temporalPromise;
      if (signal?.aborted) throw new StackError('fleetmedic up: interrupted');
      const state: StackState = {
        version: 1,
        clusterName,
        clusterId,
        nodes: options.nodes,
        startedAt: new Date().toISOString(),
        temporal: {
          process: temporal.process,
          address: temporal.address,
          uiUrl: temporal.uiUrl,
          port: ports.temporal,
          uiPort: ports.temporalUi,
          httpPort: ports.temporalHttp,
          metricsPort: ports.temporalMetrics,
          namespace: config.temporalNamespace,
          dbFile: temporal.dbFile,
          logFile: temporal.logFile,
        },
        kube: {
          workdir: kwok.workdir,
          kwokctl: kwok.kwokctl,
          kubeconfig,
          ports: {
            apiserver: ports.apiserver,
            etcd: ports.etcd,
            etcdPeer: ports.etcdPeer,
            controllerManager: ports.controllerManager,
            scheduler: ports.scheduler,
            kwokController: ports.kwokController,
          },
          apiserverUrl: kc.getCurrentCluster()?.server ?? '',
        },
      };
      await writeStackState(config.stateDir, state);
      if (options.runner) {
        // After the record: the runner reads the stack from it.
        const withRunner = { ...state, runner: await startRunner(config, log) };
        await writeStackState(config.stateDir, withRunner);
        return { outcome: 'started', state: withRunner, seconds: (Date.now() - started) / 1000 };
      }
      return { outcome: 'started', state, seconds: (Date.now() - started) / 1000 };
    } catch (err) {
      // Leave nothing half-started: stop whatever this attempt started.
      const temporal = await temporalPromise.catch(() => undefined);
      if (temporal) await stopTemporalServer(temporal.process);
      await stopKwokCluster(kwok).catch(() => {});
      // A record written before the runner failed to start would name processes now stopped.
      await removeStackState(config.stateDir).catch(() => {});
      throw err;
    }
  });
}

function portsOf(state: StackState): StackPorts {
  return {
    temporal: state.temporal.port,
    temporalUi: state.temporal.uiPort,
    temporalHttp: state.temporal.httpPort,
    temporalMetrics: state.temporal.metricsPort,
    ...state.kube.ports,
  };
}

/** Stops the stack `up` started (Temporal by its pid, the cluster's components by kwokctl's pid files). */
export async function down(
  config: Config,
  options: { purge?: boolean; log?: (line: string) => void } = {},
): Promise<'stopped' | 'not-running'> {
  const log = options.log ?? (() => {});
  return withStateLock(config.stateDir, async () => {
    const state = await readStackState(config.stateDir);
    if (!state) {
      if (options.purge) await purgeState(config.stateDir);
      return 'not-running';
    }
    await stopStack(state, log);
    await removeStackState(config.stateDir);
    if (options.purge) {
      await deleteKwokCluster(kwokRefOf(state)).catch(() => {});
      await purgeState(config.stateDir);
    }
    return 'stopped';
  });
}

async function purgeState(stateDir: string): Promise<void> {
  for (const sub of ['temporal', 'kwok'])
    await fs.rm(path.join(stateDir, sub), { recursive: true, force: true });
}

/**
 * Starts `fleetmedic runner` detached on the stack of `config.stateDir` and waits until it holds its
 * lock (it serves the pods from then on), or fails with the end of its log.
 */
async function startRunner(
  config: Config,
  log: (line: string) => void,
): Promise<{ process: ManagedProcess; logFile: string }> {
  const dir = path.join(config.stateDir, 'runner');
  await fs.mkdir(dir, { recursive: true });
  const logFile = path.join(dir, 'runner.out');
  const proc = startDetached(process.execPath, [FLEETMEDIC_BIN, 'runner'], {
    logFile,
    env: { ...process.env, FLEETMEDIC_STATE_DIR: config.stateDir },
  });
  const lock = path.join(dir, 'runner.lock');
  await waitFor(
    'the process runner',
    async () => {
      if (!(await isRunning(proc))) {
        throw new StackError(`the process runner exited at start: ${await tailFile(logFile)}`);
      }
      return (await fs.readFile(lock, 'utf8').catch(() => '')).trim() === String(proc.pid);
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  log(`process runner started (pid ${proc.pid}; log ${path.join(dir, 'runner.log')})`);
  return { process: proc, logFile };
}

async function stopStack(state: StackState, log: (line: string) => void): Promise<void> {
  if (state.runner) {
    // First: it stops its processes (SIGTERM, 5 s each, all at once) and marks their pods not Ready.
    const runner = await stopProcess(state.runner.process, 20_000);
    log(`process runner (pid ${state.runner.process.pid}): ${runner}`);
  }
  const temporal = await stopTemporalServer(state.temporal.process);
  log(`Temporal dev server (pid ${state.temporal.process.pid}): ${temporal}`);
  await stopKwokCluster(kwokRefOf(state));
  log(`cluster ${state.clusterName}: stopped`);
}

function kwokRefOf(state: StackState): KwokClusterRef {
  return { name: state.clusterName, workdir: state.kube.workdir, kwokctl: state.kube.kwokctl };
}

/**
 * Whether each component of a recorded stack is up; `problems` says what is not, and `stoppedLogs` are
 * the log files of the cluster's components that stopped.
 */
export async function stackHealth(
  state: StackState,
): Promise<{ healthy: boolean; problems: string[]; readyNodes: number; stoppedLogs: string[] }> {
  const problems: string[] = [];
  const stoppedLogs: string[] = [];
  let readyNodes = 0;
  if (!(await isRunning(state.temporal.process))) {
    problems.push(`Temporal dev server (pid ${state.temporal.process.pid}) is not running`);
  } else if (!(await temporalHealthy(state.temporal.address).catch(() => false))) {
    problems.push(`Temporal at ${state.temporal.address} does not answer`);
  }
  const ref = kwokRefOf(state);
  const components = await kwokClusterProcesses(ref);
  const stopped = components.filter((c) => !c.running);
  if (components.length === 0) {
    problems.push(`cluster ${state.clusterName} has no recorded components: start it with \`fleetmedic up\``);
  } else if (stopped.length > 0) {
    for (const c of stopped) {
      const log = kwokComponentLog(ref, c.component);
      stoppedLogs.push(log);
      problems.push(`${c.component} of cluster ${state.clusterName} is not running (its log: ${log})`);
    }
  } else {
    try {
      const kc = loadKubeConfig(state.kube.kubeconfig);
      readyNodes = (await readySimNodes(kc)).length;
      if (readyNodes < state.nodes) problems.push(`${readyNodes} of ${state.nodes} simulated nodes Ready`);
    } catch (err) {
      problems.push(
        `kube-apiserver at ${state.kube.apiserverUrl} does not answer: ${(err as Error).message}`,
      );
    }
  }
  return { healthy: problems.length === 0, problems, readyNodes, stoppedLogs };
}

/** The recorded stack of a state directory, checked to be a fleetmedic simulation on 127.0.0.1. */
export async function attachStack(stateDir: string): Promise<StackState> {
  const state = await readStackState(stateDir);
  if (!state) throw new StackError(`no fleetmedic stack is recorded in ${stateDir}; run \`fleetmedic up\``);
  for (const url of [state.kube.apiserverUrl, `tcp://${state.temporal.address}`]) {
    if (new URL(url).hostname !== '127.0.0.1') {
      throw new StackError(`stack in ${stateDir} is not on 127.0.0.1 (${url}): refusing to use it`);
    }
  }
  await assertSimulatedCluster(loadKubeConfig(state.kube.kubeconfig));
  return state;
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
