import {
  CoreV1Api,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type ObjectCache,
  type V1ContainerStatus,
  type V1Pod,
  type V1PodCondition,
} from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StackError } from '../errors.js';
import { isApiError } from '../k8s/api-errors.js';
import { PROCESS_LABEL, SIMULATED_LABEL } from '../k8s/labels.js';
import { assertLoopbackAddress } from '../k8s/loopback.js';
import { pidAlive } from '../stack/processes.js';
import type { InferenceArtifacts } from '../toolchain/inference.js';
import {
  ProcessSpecError,
  processCommand,
  processKindOf,
  servedContainer,
  type ProcessCommand,
} from './process-kinds.js';

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/** Environment variable every runner process carries: the pod UID, to find leftovers after a crash. */
export const RUNNER_POD_ENV = 'FMRUNNER_POD_UID';

export interface ProcessRunnerOptions {
  readonly kc: KubeConfig;
  /** Logs, pid files and per-pod directories go under `<stateDir>/runner/`. */
  readonly stateDir: string;
  readonly inference?: InferenceArtifacts;
  /** The kubeconfig file of `kc`, given to `gateway` pods (they watch their upstream with it). */
  readonly kubeconfig?: string;
  /** First restart delay of a process that exited (doubles per restart, at most 30 s). */
  readonly restartBackoffMs?: number;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What the runner knows about one pod's process. */
interface Served {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  child?: ChildProcess;
  command?: ProcessCommand;
  /** The address its process binds, while it runs. */
  address?: string;
  restartCount: number;
  ready: boolean;
  terminating: boolean;
  gone: boolean;
  probeTimer?: NodeJS.Timeout;
  restartTimer?: NodeJS.Timeout;
  successes: number;
  failures: number;
  /** The reason last written into the pod's status, so an unchanged one is not written again. */
  lastReason?: string;
}

/**
 * Runs a real local process for each pod on a simulated node that carries `fleetmedic.io/process`,
 * doing what a kubelet does for it:
 * - starts the process bound to the pod's IP (which must be in 127.0.0.0/8) once kwok has given the
 *   pod one (src/stack/kwok-stages.ts: kwok starts such pods Running but not Ready);
 * - probes the container's readiness probe (HTTP GET; period, timeout and thresholds as in the spec)
 *   and writes Ready / ContainersReady and the container's status from the results;
 * - restarts a process that exits, with a growing delay, counting `restartCount`;
 * - on deletion runs the `preStop` sleep, sends SIGTERM, sends SIGKILL when the grace period ends,
 *   and only then deletes the pod for good (grace period 0; kwok leaves these pods alone).
 * A runner started after another one's crash kills the processes its predecessor left.
 */
export class ProcessRunner {
  private readonly core: CoreV1Api;
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private readonly served = new Map<string, Served>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly simulatedNodes = new Map<string, Promise<boolean>>();
  private stopped = false;
  private restartWatch: NodeJS.Timeout | undefined;
  private readonly dir: string;
  private readonly log: (message: string, fields?: Record<string, unknown>) => void;

  constructor(private readonly options: ProcessRunnerOptions) {
    this.core = options.kc.makeApiClient(CoreV1Api);
    this.dir = path.join(options.stateDir, 'runner');
    this.log = options.log ?? (() => {});
  }

  /** Kills a previous runner's leftovers, then watches the pods and serves them. */
  async start(): Promise<void> {
    await fs.mkdir(path.join(this.dir, 'pids'), { recursive: true });
    await fs.mkdir(path.join(this.dir, 'logs'), { recursive: true });
    await this.takeLock();
    try {
      await this.startServing();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startServing(): Promise<void> {
    await this.killLeftovers();
    const informer = makeInformer<V1Pod>(
      this.options.kc,
      '/api/v1/pods',
      () => this.core.listPodForAllNamespaces({ labelSelector: PROCESS_LABEL }),
      PROCESS_LABEL,
    );
    this.informer = informer;
    informer.on('add', (pod) => this.enqueue(pod));
    informer.on('update', (pod) => this.enqueue(pod));
    informer.on('delete', (pod) => this.enqueue(pod, true));
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.log('pod watch failed; restarting it', { error: String(err) });
      this.restartWatch = setTimeout(() => {
        informer.start().catch((e: unknown) => this.log('pod watch restart failed', { error: String(e) }));
      }, 1_000);
    });
    await informer.start();
  }

  /** Stops every process (SIGTERM, SIGKILL after 5 s) and marks its pod not Ready. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartWatch);
    await this.informer?.stop();
    await Promise.allSettled([...this.queues.values()]);
    await Promise.all(
      [...this.served.values()].map(async (s) => {
        clearTimeout(s.probeTimer);
        clearTimeout(s.restartTimer);
        s.terminating = true;
        if (s.child) await stopChild(s.child, 5_000);
        await this.writeStatus(s, { ready: false, reason: 'RunnerStopped' }).catch(() => undefined);
        await fs.rm(this.pidFile(s.uid), { force: true });
      }),
    );
    await fs.rm(path.join(this.dir, 'runner.lock'), { force: true });
  }

  /**
   * One runner per state directory: two would both start a process for each pod. A lock whose
   * holder is gone (a crash) is taken over.
   */
  private async takeLock(): Promise<void> {
    const lock = path.join(this.dir, 'runner.lock');
    for (;;) {
      try {
        await fs.writeFile(lock, String(process.pid), { flag: 'wx' });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
      const alive = holder === process.pid || (holder > 0 && pidAlive(holder));
      if (alive && holder !== process.pid) {
        throw new StackError(
          `another process runner (pid ${holder}) serves ${this.options.stateDir}; stop it first`,
        );
      }
      await fs.rm(lock, { force: true });
    }
  }

  /** The pods served now, for tests and `fleetmedic runner`'s status line. */
  processes(): { namespace: string; name: string; pid?: number; ready: boolean; restarts: number }[] {
    return [...this.served.values()].map((s) => ({
      namespace: s.namespace,
      name: s.name,
      pid: s.child?.pid,
      ready: s.ready,
      restarts: s.restartCount,
    }));
  }

  private enqueue(pod: V1Pod, deleted = false): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    const previous = this.queues.get(uid) ?? Promise.resolve();
    const next = previous
      .then(() => (deleted ? this.forget(uid) : this.reconcile(pod)))
      .catch((err: unknown) =>
        this.log('reconciling a pod failed', {
          pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
          error: (err as Error).message,
        }),
      );
    this.queues.set(uid, next);
    void next.finally(() => {
      if (this.queues.get(uid) === next) this.queues.delete(uid);
    });
  }

  private async reconcile(pod: V1Pod): Promise<void> {
    const uid = pod.metadata!.uid!;
    const nodeName = pod.spec?.nodeName;
    if (!nodeName || !(await this.isSimulatedNode(nodeName))) return;
    let served = this.served.get(uid);
    if (!served) {
      served = {
        uid,
        namespace: pod.metadata!.namespace!,
        name: pod.metadata!.name!,
        restartCount: pod.status?.containerStatuses?.[0]?.restartCount ?? 0,
        ready: false,
        terminating: false,
        gone: false,
        successes: 0,
        failures: 0,
      };
      this.served.set(uid, served);
    }
    if (pod.metadata?.deletionTimestamp) {
      if (!served.terminating) {
        served.terminating = true;
        void this.terminate(served, pod);
      }
      return;
    }
    if (served.child || served.restartTimer || pod.status?.phase !== 'Running' || !pod.status.podIP) return;
    // kwok hands a deleted pod's IP to the next pod while the runner still stops the old process
    // (a CNI never does): the new process waits until the address is free, or it would fail to bind
    // and requests meant for the new pod would reach the old one.
    const address = `${pod.status.podIP}:${safePort(pod)}`;
    const holder = [...this.served.values()].find((s) => s !== served && s.child && s.address === address);
    if (holder) {
      this.log('waiting for the pod IP to be free', { pod: served.name, heldBy: holder.name, address });
      served.restartTimer = setTimeout(() => {
        served.restartTimer = undefined;
        const live = this.informer?.get(served.name, served.namespace);
        if (live && !served.terminating && !this.stopped) this.enqueue(live);
      }, 250);
      return;
    }
    // A runner restarted after a crash: the old process is gone, this is a container restart.
    if (pod.status.containerStatuses?.[0]?.started) served.restartCount += 1;
    await this.startProcess(served, pod);
  }

  private async startProcess(served: Served, pod: V1Pod): Promise<void> {
    let command: ProcessCommand;
    try {
      const podIP = assertLoopbackAddress(pod.status?.podIP);
      const { container, port } = servedContainer(pod);
      const podDir = path.join(this.dir, 'pods', served.uid);
      await fs.mkdir(podDir, { recursive: true });
      command = processCommand(processKindOf(pod, PROCESS_LABEL), {
        pod,
        container,
        podIP,
        port,
        podDir,
        checkpointRoot: path.join(this.options.stateDir, 'checkpoints'),
        inference: this.options.inference,
        kubeconfig: this.options.kubeconfig,
      });
    } catch (err) {
      const reason = err instanceof ProcessSpecError ? err.reason : 'NonLoopbackAddress';
      this.log('refusing to run a process for the pod', {
        pod: `${served.namespace}/${served.name}`,
        reason,
        error: (err as Error).message,
      });
      await this.writeStatus(served, { ready: false, reason, message: (err as Error).message });
      return;
    }
    const logFile = path.join(this.dir, 'logs', `${served.namespace}_${served.name}.log`);
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(command.file, command.args, {
      // A process group of its own: signals reach what it starts too (the replica wrapper's
      // llama-server), as a container's processes all stop with it.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [RUNNER_POD_ENV]: served.uid },
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    served.child = child;
    served.command = command;
    served.address = `${pod.status!.podIP!}:${servedContainer(pod).port}`;
    served.successes = 0;
    served.failures = 0;
    if (child.pid) await fs.writeFile(this.pidFile(served.uid), String(child.pid));
    this.log('process started', {
      pod: `${served.namespace}/${served.name}`,
      pid: child.pid,
      command: command.describe,
    });
    child.once('error', (err) =>
      this.log('process failed to start', { pod: served.name, error: err.message }),
    );
    child.once('exit', (code, signal) => void this.exited(served, code, signal));
    await this.writeStatus(served, { ready: false, started: true, reason: 'ProcessStarted' });
    this.scheduleProbe(served, pod, true);
  }

  private async exited(served: Served, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    clearTimeout(served.probeTimer);
    served.child = undefined;
    served.address = undefined;
    served.ready = false;
    if (this.stopped) return; // stop() cleans up; after a crash the next runner does
    await fs.rm(this.pidFile(served.uid), { force: true });
    if (served.terminating || served.gone) return;
    const delay = Math.min((this.options.restartBackoffMs ?? 1_000) * 2 ** served.restartCount, 30_000);
    this.log('process exited; restarting it', { pod: served.name, code, signal, delayMs: delay });
    await this.writeStatus(served, {
      ready: false,
      reason: 'ProcessExited',
      message: `exit ${code ?? signal}; restarting in ${delay} ms`,
    }).catch(() => undefined);
    served.restartTimer = setTimeout(() => {
      served.restartTimer = undefined;
      served.restartCount += 1;
      const pod = this.informer?.get(served.name, served.namespace);
      if (pod && !served.terminating && !this.stopped) this.enqueue(pod);
    }, delay);
  }

  /** Probes the container's readiness (no probe: ready once started) and writes changes. */
  private scheduleProbe(served: Served, pod: V1Pod, first = false): void {
    const { container, port } = servedContainer(pod);
    const probe = container.readinessProbe;
    const periodMs = (probe?.periodSeconds ?? 10) * 1_000;
    const delayMs = first ? (probe?.initialDelaySeconds ?? 0) * 1_000 : periodMs;
    served.probeTimer = setTimeout(() => {
      void (async () => {
        if (!served.child || served.terminating || this.stopped) return;
        const ok = probe?.httpGet ? await this.httpProbe(pod, port) : true;
        if (ok) {
          served.successes += 1;
          served.failures = 0;
        } else {
          served.failures += 1;
          served.successes = 0;
        }
        const ready = served.ready
          ? served.failures < (probe?.failureThreshold ?? 3)
          : served.successes >= (probe?.successThreshold ?? 1);
        if (ready !== served.ready && served.child && !served.terminating) {
          served.ready = ready;
          this.log(ready ? 'pod ready' : 'pod not ready', { pod: `${served.namespace}/${served.name}` });
          await this.writeStatus(served, {
            ready,
            started: true,
            reason: ready ? 'ProbeSucceeded' : 'ProbeFailed',
          }).catch((err: unknown) => {
            served.ready = !ready; // written again at the next probe
            this.log('writing readiness failed', { pod: served.name, error: (err as Error).message });
          });
        }
        if (served.child && !served.terminating && !this.stopped) this.scheduleProbe(served, pod);
      })();
    }, delayMs);
  }

  private async httpProbe(pod: V1Pod, containerPort: number): Promise<boolean> {
    const { container } = servedContainer(pod);
    const get = container.readinessProbe!.httpGet!;
    const port =
      typeof get.port === 'number'
        ? get.port
        : /^\d+$/.test(String(get.port))
          ? Number(get.port)
          : (container.ports?.find((p) => p.name === get.port)?.containerPort ?? containerPort);
    const url = `http://${pod.status!.podIP!}:${port}${get.path ?? '/'}`;
    const timeoutMs = (container.readinessProbe!.timeoutSeconds ?? 1) * 1_000;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }

  /**
   * Deletion as a kubelet does it: not Ready at once, the `preStop` sleep, SIGTERM, SIGKILL when the
   * grace period (counted from the deletion, preStop included) ends, then the pod's final deletion.
   */
  private async terminate(served: Served, pod: V1Pod): Promise<void> {
    clearTimeout(served.probeTimer);
    clearTimeout(served.restartTimer);
    served.restartTimer = undefined;
    const deadline = Date.parse(pod.metadata!.deletionTimestamp as unknown as string) || Date.now();
    const graceMs = Math.max(0, deadline - Date.now());
    this.log('pod deleted: stopping its process', { pod: `${served.namespace}/${served.name}`, graceMs });
    if (served.ready) {
      served.ready = false;
      await this.writeStatus(served, { ready: false, started: true, reason: 'Terminating' }).catch(
        () => undefined,
      );
    }
    const child = served.child;
    if (child) {
      const preStopSeconds = pod.spec?.containers[0]?.lifecycle?.preStop?.sleep?.seconds ?? 0;
      if (preStopSeconds > 0) await sleep(Math.min(preStopSeconds * 1_000, graceMs));
      // A preStop that used the whole grace period still gets 2 s after SIGTERM, as with a kubelet.
      await stopChild(child, Math.max(deadline - Date.now(), preStopSeconds > 0 ? 2_000 : 0));
    }
    await fs.rm(this.pidFile(served.uid), { force: true });
    await fs.rm(path.join(this.dir, 'pods', served.uid), { recursive: true, force: true });
    try {
      await this.core.deleteNamespacedPod({
        name: served.name,
        namespace: served.namespace,
        // With a body the API server reads the options from it alone: the grace period goes there.
        body: { gracePeriodSeconds: 0, preconditions: { uid: served.uid } },
      });
    } catch (err) {
      if (!isApiError(err, 404) && !isApiError(err, 409)) throw err;
    }
    this.log('pod removed', { pod: `${served.namespace}/${served.name}` });
  }

  /** The pod is gone from the API (deleted by us, or forced): its process goes too. */
  private async forget(uid: string): Promise<void> {
    const served = this.served.get(uid);
    if (!served) return;
    served.gone = true;
    clearTimeout(served.probeTimer);
    clearTimeout(served.restartTimer);
    if (served.child && !served.terminating) await stopChild(served.child, 0);
    this.served.delete(uid);
    await fs.rm(this.pidFile(uid), { force: true });
  }

  private async writeStatus(
    served: Served,
    state: { ready: boolean; started?: boolean; reason: string; message?: string },
  ): Promise<void> {
    if (served.gone) return;
    const now = new Date();
    const condition = (type: string): V1PodCondition => ({
      type,
      status: state.ready ? 'True' : 'False',
      lastTransitionTime: now,
      ...(state.ready ? {} : { reason: state.reason, message: state.message }),
    });
    const live = this.informer?.get(served.name, served.namespace);
    const container = live?.spec?.containers[0];
    const containerStatus: V1ContainerStatus = {
      name: container?.name ?? 'server',
      image: container?.image ?? '',
      imageID: '',
      ready: state.ready,
      started: state.started ?? false,
      restartCount: served.restartCount,
      state: served.child
        ? { running: { startedAt: now } }
        : { waiting: { reason: state.reason, message: state.message } },
    };
    try {
      await this.core.patchNamespacedPodStatus(
        {
          name: served.name,
          namespace: served.namespace,
          body: {
            status: {
              conditions: [condition('Ready'), condition('ContainersReady')],
              containerStatuses: [containerStatus],
            },
          },
        },
        strategicMerge,
      );
      served.lastReason = state.reason;
    } catch (err) {
      if (isApiError(err, 404)) return;
      throw err;
    }
  }

  private isSimulatedNode(name: string): Promise<boolean> {
    let known = this.simulatedNodes.get(name);
    if (!known) {
      known = this.core.readNode({ name }).then(
        (node) => node.metadata?.labels?.[SIMULATED_LABEL] === 'true',
        () => false,
      );
      this.simulatedNodes.set(name, known);
      // Not cached when the read failed: retried with the next event.
      void known.then((simulated) => simulated || this.simulatedNodes.delete(name));
    }
    return known;
  }

  private pidFile(uid: string): string {
    return path.join(this.dir, 'pids', `${uid}.pid`);
  }

  /** SIGKILLs the processes a previous runner recorded, if they still carry its marker. */
  private async killLeftovers(): Promise<void> {
    const files = await fs.readdir(path.join(this.dir, 'pids')).catch(() => [] as string[]);
    for (const file of files) {
      const uid = file.replace(/\.pid$/, '');
      const pid = Number((await fs.readFile(this.pidFile(uid), 'utf8').catch(() => '')).trim());
      const environ = await fs.readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
      if (pid > 0 && environ.split('\0').includes(`${RUNNER_POD_ENV}=${uid}`)) {
        this.log('killing a process a previous runner left', { pid, uid });
        signalGroup(pid, 'SIGKILL');
        for (
          let i = 0;
          i < 50 &&
          (await fs.access(`/proc/${pid}`).then(
            () => true,
            () => false,
          ));
          i++
        ) {
          await sleep(20);
        }
      }
      await fs.rm(this.pidFile(uid), { force: true });
    }
  }
}

/** SIGTERM, then SIGKILL after `graceMs` (at once for 0); resolves when the process has exited. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalGroup(child.pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  if (graceMs > 0) {
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  } else {
    await exited;
  }
}

/** The port a pod's process binds, or 0 when it names none (its start is refused with the reason). */
function safePort(pod: V1Pod): number {
  try {
    return servedContainer(pod).port;
  } catch {
    return 0;
  }
}

/** Signals the process group of `pid` (the runner starts each process as a group leader), else `pid`. */
function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
