import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { StackError } from '../errors.js';
import type { ResolvedTool } from '../toolchain/toolchain.js';
import type { StackToolName } from '../toolchain/tools.js';
import { ETCD_VERSION, KUBERNETES_VERSION } from '../toolchain/tools.js';
import type { KwokStage } from './kwok-stages.js';
import { stopProcess } from './processes.js';

/** A kwok cluster in a work directory of its own (never ~/.kwok, never ~/.kube/config). */
export interface KwokClusterRef {
  readonly name: string;
  /** KWOK_WORKDIR: the cluster's files live in `<workdir>/clusters/<name>/`. */
  readonly workdir: string;
  /** Path of the kwokctl binary that manages it. */
  readonly kwokctl: string;
}

export interface KwokClusterOptions extends KwokClusterRef {
  readonly ports: KwokPorts;
  readonly tools: Record<StackToolName, ResolvedTool>;
  /**
   * The kwok controller's stages (src/stack/kwok-stages.ts: kwok's defaults, changed for the process
   * runner's pods). Without them kwok uses its built-in defaults, which mark every pod Ready at once.
   */
  readonly stages?: readonly KwokStage[];
}

/**
 * Every port of the cluster's components. All are set explicitly: for a port left at 0, kwokctl probes
 * for a free one by briefly binding it on all interfaces, and nothing here may bind beyond 127.0.0.1.
 */
export interface KwokPorts {
  readonly apiserver: number;
  readonly etcd: number;
  readonly etcdPeer: number;
  readonly controllerManager: number;
  readonly scheduler: number;
  readonly kwokController: number;
}

/**
 * Pods without a node pod range fall back to this kwok-wide range. kwok's default is 10.0.0.0/24, a
 * private range no traffic may go to here; every simulated node also gets its own /24 in 127.0.0.0/8.
 */
export const FALLBACK_POD_CIDR = '127.64.0.0/16';
/** The address kwok reports for nodes that do not set their own. */
export const FALLBACK_NODE_IP = '127.10.255.254';

export function kwokClusterDir(ref: KwokClusterRef): string {
  return path.join(ref.workdir, 'clusters', ref.name);
}

/** The kubeconfig kwokctl writes for the cluster; fleetmedic loads it explicitly. */
export function kwokKubeconfigPath(ref: KwokClusterRef): string {
  return path.join(kwokClusterDir(ref), 'kubeconfig.yaml');
}

/**
 * The kwokctl configuration: binary runtime, every component bound to 127.0.0.1 on a port we chose,
 * every binary a local path (kwokctl symlinks it; nothing is downloaded), optional components pointed
 * at paths that do not exist so that enabling one by accident fails instead of downloading, and the
 * kwok controller's fallback pod range inside 127.0.0.0/8.
 */
export function kwokctlConfig(options: KwokClusterOptions): string {
  const t = options.tools;
  const kwokctl = {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokctlConfiguration',
    options: {
      runtime: 'binary',
      // kwokctl's default is 0.0.0.0, and this can only be set in the file (no flag, no variable).
      bindAddress: '127.0.0.1',
      kubeVersion: `v${KUBERNETES_VERSION}`,
      etcdVersion: ETCD_VERSION,
      // Keep true: with false, kwokctl passes kcm/scheduler flags modern versions reject, and the
      // scheduler would listen on its default port on all interfaces.
      securePort: true,
      kubeAuthorization: true,
      kubeAdmission: true,
      quietPull: true,
      kubeApiserverPort: options.ports.apiserver,
      etcdPort: options.ports.etcd,
      etcdPeerPort: options.ports.etcdPeer,
      kubeControllerManagerPort: options.ports.controllerManager,
      kubeSchedulerPort: options.ports.scheduler,
      kwokControllerPort: options.ports.kwokController,
      kubeApiserverBinary: t['kube-apiserver'].path,
      kubeControllerManagerBinary: t['kube-controller-manager'].path,
      kubeSchedulerBinary: t['kube-scheduler'].path,
      kubectlBinary: t.kubectl.path,
      etcdBinary: t.etcd.path,
      kwokControllerBinary: t.kwok.path,
      kectlBinary: '/nonexistent/fleetmedic-disabled/kectl',
      etcdctlBinary: '/nonexistent/fleetmedic-disabled/etcdctl',
      etcdutlBinary: '/nonexistent/fleetmedic-disabled/etcdutl',
      prometheusBinary: '/nonexistent/fleetmedic-disabled/prometheus',
      jaegerBinary: '/nonexistent/fleetmedic-disabled/jaeger',
      metricsServerBinary: '/nonexistent/fleetmedic-disabled/metrics-server',
    },
    componentsPatches: [
      // kwokctl passes an empty --node-ip, which would override the configuration below.
      { name: 'kwok-controller', extraArgs: [{ key: 'node-ip', value: FALLBACK_NODE_IP, override: true }] },
      {
        name: 'kube-controller-manager',
        extraArgs: [
          // At the default 20 requests a second, the node lifecycle controller took about 3 minutes to
          // take the not-ready taint off 1,500 new nodes (a GET and a PATCH each), keeping the API
          // server busy all that time; at 200 it is done in seconds.
          { key: 'kube-api-qps', value: '200' },
          { key: 'kube-api-burst', value: '400' },
          // The TTL controller writes a kubelet cache hint on every node, again each time the cluster
          // grows past 100, 500 and 1,000 nodes: simulated nodes have no kubelet to read it.
          { key: 'controllers', value: '*,-ttl-controller' },
          // One instance, so nothing to elect: with election on, a controller manager that cannot renew
          // its lease within 10 s (a saturated 2-core machine) exits, and the stack loses it for good.
          { key: 'leader-elect', value: 'false' },
        ],
      },
      { name: 'kube-scheduler', extraArgs: [{ key: 'leader-elect', value: 'false' }] },
    ],
  };
  const kwok = {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokConfiguration',
    options: {
      cidr: FALLBACK_POD_CIDR,
      nodeIP: FALLBACK_NODE_IP,
      // A KwokConfiguration in the file gets no defaults at all: without these the controller exits.
      podPlayStageParallelism: 4,
      nodePlayStageParallelism: 4,
      nodeLeaseParallelism: 4,
      podsOnNodeSyncParallelism: 1,
      enablePodsOnNodeSyncListPager: true,
      enablePodsOnNodeSyncStreamWatch: false,
      enableDebuggingHandlers: false,
      enableProfilingHandler: false,
      enableContentionProfiling: false,
    },
  };
  // lineWidth 0: no folding, so the stages' Go templates are written line for line.
  return [kwokctl, kwok, ...(options.stages ?? [])]
    .map((doc) => YAML.stringify(doc, { lineWidth: 0 }))
    .join('---\n');
}

/**
 * Runs kwokctl with a clean environment: KWOK_* variables would override the configuration file, a
 * `kubectl` on PATH would win over ours (PATH holds only our kubectl's directory), and HOME and
 * KUBECONFIG point into the work directory so ~/.kube/config is never touched.
 */
function kwokctl(ref: KwokClusterRef & { kubectl?: string }, args: string[], timeoutMs = 180_000) {
  const env: Record<string, string> = {
    KWOK_WORKDIR: ref.workdir,
    HOME: ref.workdir,
    KUBECONFIG: path.join(ref.workdir, 'no-kubeconfig.yaml'),
    PATH: ref.kubectl ? path.dirname(ref.kubectl) : '/nonexistent',
  };
  return execa(ref.kwokctl, ['--name', ref.name, ...args], {
    env,
    extendEnv: false,
    reject: false,
    all: true,
    timeout: timeoutMs,
  });
}

async function writeConfig(options: KwokClusterOptions): Promise<string> {
  await fs.mkdir(options.workdir, { recursive: true });
  const file = path.join(options.workdir, `${options.name}.kwokctl.yaml`);
  await fs.writeFile(file, kwokctlConfig(options));
  return file;
}

function withKubectl(options: KwokClusterOptions): KwokClusterRef & { kubectl: string } {
  return { ...options, kubectl: options.tools.kubectl.path };
}

function createArgs(configFile: string, extra: string[] = []): string[] {
  // --kubeconfig "": do not add the cluster to ~/.kube/config (kwokctl's default).
  return ['create', 'cluster', '--config', configFile, '--kubeconfig', '', '--wait', '60s', ...extra];
}

/**
 * What `kwokctl create cluster` would run, without running it (`--dry-run`). Tests check that it
 * contains no URL: nothing may be downloaded.
 */
export async function kwokctlDryRun(options: KwokClusterOptions): Promise<string> {
  const configFile = await writeConfig(options);
  const result = await kwokctl(withKubectl(options), ['--dry-run', ...createArgs(configFile)]);
  if (result.exitCode !== 0) throw new StackError(`kwokctl --dry-run failed: ${result.all}`);
  return result.all ?? '';
}

/** Creates and starts the cluster; resolves once kwokctl reports it ready. */
export async function createKwokCluster(
  options: KwokClusterOptions,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const configFile = await writeConfig(options);
  log(`creating cluster ${options.name} (kube-apiserver on 127.0.0.1:${options.ports.apiserver})`);
  await runWatchingComponents(options, createArgs(configFile), 'create', signal);
}

/** Starts the components of an existing (stopped) cluster, keeping its etcd data. */
export async function startKwokCluster(
  options: KwokClusterOptions,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  log(`starting existing cluster ${options.name}`);
  await runWatchingComponents(options, ['start', 'cluster', '--wait', '60s'], 'start', signal);
}

/**
 * Runs a kwokctl command that starts components, and watches them meanwhile: kwokctl itself waits
 * minutes for an API server whose etcd already died (say a port taken between our check and its
 * bind), so a component that exits ends the wait at once, with the end of its log in the error.
 * `signal` ends it too (an interrupted `up`): the components started so far keep their pid files, for
 * the caller to stop.
 */
async function runWatchingComponents(
  options: KwokClusterOptions,
  args: string[],
  verb: string,
  signal?: AbortSignal,
): Promise<void> {
  if (signal?.aborted) throw new StackError(`kwokctl ${verb} cluster ${options.name}: interrupted`);
  const child = kwokctl(withKubectl(options), args);
  let died: KwokComponent | undefined;
  const watcher = setInterval(() => {
    void kwokClusterProcesses(options).then((procs) => {
      died ??= procs.find((p) => !p.running);
      if (died) child.kill('SIGKILL');
    });
  }, 500);
  const interrupt = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', interrupt, { once: true });
  try {
    const result = await child;
    if (signal?.aborted) throw new StackError(`kwokctl ${verb} cluster ${options.name}: interrupted`);
    if (died) {
      const logFile = kwokComponentLog(options, died.component);
      const logTail = tail(await fs.readFile(logFile, 'utf8').catch(() => ''), 5);
      const inUse = /address already in use/.test(logTail);
      throw new StackError(
        `${died.component} of cluster ${options.name} exited while starting` +
          `${inUse ? ' (a port it needs is in use)' : ''}:\n${logTail}`,
        { permanent: !inUse },
      );
    }
    if (result.exitCode !== 0) {
      throw new StackError(
        `kwokctl ${verb} cluster ${options.name} failed (exit ${result.exitCode}):\n${tail(result.all)}`,
      );
    }
  } finally {
    clearInterval(watcher);
    signal?.removeEventListener('abort', interrupt);
  }
}

/** A component process of the cluster, from kwokctl's pid file. */
export interface KwokComponent {
  readonly component: string;
  readonly pid: number;
  /** True when the pid is alive and is really this cluster's process (not a reused pid). */
  readonly running: boolean;
}

/**
 * The cluster's component processes, from kwokctl's pid files. A pid counts as the cluster's only
 * when the process runs in the cluster directory (kwokctl starts every component there): kwokctl itself
 * only checks that the pid is alive, which after a reboot may be an unrelated process.
 */
export async function kwokClusterProcesses(ref: KwokClusterRef): Promise<KwokComponent[]> {
  const dir = kwokClusterDir(ref);
  const pidsDir = path.join(dir, 'pids');
  let files: string[];
  try {
    files = await fs.readdir(pidsDir);
  } catch {
    return [];
  }
  const procs: KwokComponent[] = [];
  for (const file of files.filter((f) => f.endsWith('.pid')).sort()) {
    const pid = Number((await fs.readFile(path.join(pidsDir, file), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => '');
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const zombie = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
    procs.push({ component: file.replace(/\.pid$/, ''), pid, running: cwd === dir && !zombie });
  }
  return procs;
}

/** The log file kwokctl writes for one of the cluster's components. */
export function kwokComponentLog(ref: KwokClusterRef, component: string): string {
  return path.join(kwokClusterDir(ref), 'logs', `${component}.log`);
}

/**
 * Stops the cluster's components by the pids kwokctl recorded, after checking each is really the
 * cluster's process; SIGTERM first so etcd shuts down cleanly. The etcd data stays for the next start.
 */
export async function stopKwokCluster(ref: KwokClusterRef): Promise<void> {
  const procs = await kwokClusterProcesses(ref);
  // Reverse start order: the kwok controller and the control plane before etcd.
  const order = ['kwok-controller', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
  procs.sort((a, b) => order.indexOf(a.component) - order.indexOf(b.component));
  for (const proc of procs) {
    if (proc.running) {
      const binary =
        (await fs.readFile(`/proc/${proc.pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
      await stopProcess({ pid: proc.pid, binary }, 10_000);
    }
    await fs.rm(path.join(kwokClusterDir(ref), 'pids', `${proc.component}.pid`), { force: true });
  }
}

/** Stops the cluster and deletes it with its data. */
export async function deleteKwokCluster(ref: KwokClusterRef): Promise<void> {
  await stopKwokCluster(ref);
  if (!(await exists(kwokClusterDir(ref)))) return;
  // kwokctl refuses an empty --kubeconfig on delete; a path that does not exist leaves every kubeconfig alone.
  const result = await kwokctl(ref, [
    'delete',
    'cluster',
    '--kubeconfig',
    path.join(ref.workdir, 'no-kubeconfig.yaml'),
  ]);
  if (result.exitCode !== 0) {
    throw new StackError(
      `kwokctl delete cluster ${ref.name} failed (exit ${result.exitCode}):\n${tail(result.all)}`,
    );
  }
}

function tail(text: string | undefined, lines = 20): string {
  return (text ?? '').trimEnd().split('\n').slice(-lines).join('\n');
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
