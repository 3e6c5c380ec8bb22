import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { StackError } from '../errors.js';
import type { ResolvedTool } from '../toolchain/toolchain.js';
import type { ToolName } from '../toolchain/tools.js';
import { KUBERNETES_VERSION } from '../toolchain/tools.js';
import { isRunning } from './processes.js';

/** A kwok cluster in a work directory of its own (never ~/.kwok, never ~/.kube/config). */
export interface KwokClusterRef {
  readonly name: string;
  /** KWOK_WORKDIR: the cluster's files live in `<workdir>/clusters/<name>/`. */
  readonly workdir: string;
  /** Path of the kwokctl binary that manages it. */
  readonly kwokctl: string;
}

export interface KwokClusterOptions extends KwokClusterRef {
  readonly apiserverPort: number;
  readonly tools: Record<ToolName, ResolvedTool>;
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
 * The kwokctl configuration: binary runtime, every component bound to 127.0.0.1, every binary a local
 * path (so kwokctl downloads nothing), and the kwok controller's pod range inside 127.0.0.0/8.
 */
export function kwokctlConfig(options: KwokClusterOptions): string {
  const t = options.tools;
  const kwokctl = {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokctlConfiguration',
    options: {
      runtime: 'binary',
      bindAddress: '127.0.0.1',
      kubeApiserverPort: options.apiserverPort,
      kubeVersion: `v${KUBERNETES_VERSION}`,
      securePort: true,
      quietPull: true,
      kubeApiserverBinary: t['kube-apiserver'].path,
      kubeControllerManagerBinary: t['kube-controller-manager'].path,
      kubeSchedulerBinary: t['kube-scheduler'].path,
      kubectlBinary: t.kubectl.path,
      etcdBinary: t.etcd.path,
      kwokControllerBinary: t.kwok.path,
    },
  };
  const kwok = {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokConfiguration',
    options: { cidr: FALLBACK_POD_CIDR, nodeIP: FALLBACK_NODE_IP },
  };
  return [kwokctl, kwok].map((doc) => YAML.stringify(doc)).join('---\n');
}

async function kwokctl(ref: KwokClusterRef, args: string[], timeoutMs = 120_000) {
  return execa(ref.kwokctl, ['--name', ref.name, ...args], {
    env: { KWOK_WORKDIR: ref.workdir },
    // Only what kwokctl needs: no KUBECONFIG or HOME-derived config can leak in.
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
  const result = await kwokctl(options, ['--dry-run', ...createArgs(configFile)]);
  if (result.exitCode !== 0) throw new StackError(`kwokctl --dry-run failed: ${result.all}`);
  return result.all ?? '';
}

/** Creates and starts the cluster; resolves once kwokctl reports it ready. */
export async function createKwokCluster(
  options: KwokClusterOptions,
  log: (line: string) => void,
): Promise<void> {
  const configFile = await writeConfig(options);
  log(`creating cluster ${options.name} (kube-apiserver on 127.0.0.1:${options.apiserverPort})`);
  const result = await kwokctl(options, createArgs(configFile));
  if (result.exitCode !== 0) {
    throw new StackError(
      `kwokctl create cluster ${options.name} failed (exit ${result.exitCode}):\n${tail(result.all)}`,
    );
  }
}

/** Starts the components of an existing (stopped) cluster, keeping its etcd data. */
export async function startKwokCluster(
  options: KwokClusterOptions,
  log: (line: string) => void,
): Promise<void> {
  log(`starting existing cluster ${options.name}`);
  const result = await kwokctl(options, ['start', 'cluster', '--wait', '60s']);
  if (result.exitCode !== 0) {
    throw new StackError(
      `kwokctl start cluster ${options.name} failed (exit ${result.exitCode}):\n${tail(result.all)}`,
    );
  }
}

/** The processes kwokctl started for the cluster, from its pid files. */
export async function kwokClusterProcesses(
  ref: KwokClusterRef,
): Promise<Array<{ component: string; pid: number; binary: string }>> {
  const pidsDir = path.join(kwokClusterDir(ref), 'pids');
  let files: string[];
  try {
    files = await fs.readdir(pidsDir);
  } catch {
    return [];
  }
  const procs = [];
  for (const file of files.filter((f) => f.endsWith('.pid'))) {
    const pid = Number((await fs.readFile(path.join(pidsDir, file), 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const binary = await fs.readlink(`/proc/${pid}/exe`).catch(() => '');
    procs.push({ component: file.replace(/\.pid$/, ''), pid, binary });
  }
  return procs;
}

/** True when every component kwokctl recorded for the cluster is running. */
export async function kwokClusterRunning(ref: KwokClusterRef): Promise<boolean> {
  const procs = await kwokClusterProcesses(ref);
  if (procs.length === 0) return false;
  for (const p of procs) {
    if (!p.binary || !(await isRunning({ pid: p.pid, binary: await argv0(p.pid) }))) return false;
  }
  return true;
}

async function argv0(pid: number): Promise<string> {
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0')[0] ?? '';
}

/** Stops the cluster's components (kwokctl stops them by the pids it recorded); etcd data stays. */
export async function stopKwokCluster(ref: KwokClusterRef): Promise<void> {
  if (!(await exists(kwokClusterDir(ref)))) return;
  const result = await kwokctl(ref, ['stop', 'cluster']);
  if (result.exitCode !== 0 && (await kwokClusterRunning(ref))) {
    throw new StackError(
      `kwokctl stop cluster ${ref.name} failed (exit ${result.exitCode}):\n${tail(result.all)}`,
    );
  }
}

/** Stops and deletes the cluster and its data. */
export async function deleteKwokCluster(ref: KwokClusterRef): Promise<void> {
  if (!(await exists(kwokClusterDir(ref)))) return;
  const result = await kwokctl(ref, ['delete', 'cluster']);
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
