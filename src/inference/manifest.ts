import type {
  KubernetesObject,
  V1Deployment,
  V1PodDisruptionBudget,
  V1Service,
} from '@kubernetes/client-node';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { FleetmedicError } from '../errors.js';
import { resolveTool } from '../toolchain/toolchain.js';

/** fleetmedic's Helm chart: the one place the inference Deployment, its Service and its PDB are written. */
export const CHART_DIR = fileURLToPath(new URL('../../charts/fleetmedic/', import.meta.url));

let helmHome: Promise<string> | undefined;

/**
 * Runs the toolchain's helm (never one on PATH) with its config, cache and data in a temporary
 * directory and an empty kubeconfig, so it neither reads ~/.kube/config nor writes under $HOME: it only
 * renders and lints, it never talks to a cluster.
 */
export async function helm(args: readonly string[], cacheDir: string): Promise<string> {
  const binary = (await resolveTool('helm', { cacheDir })).path;
  helmHome ??= (async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-helm-'));
    await fs.writeFile(path.join(dir, 'kubeconfig'), '');
    return dir;
  })();
  const home = await helmHome;
  const result = await execa(binary, args, {
    extendEnv: false,
    env: {
      PATH: '/usr/bin:/bin',
      HOME: home,
      KUBECONFIG: path.join(home, 'kubeconfig'),
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
    },
    reject: false,
    all: true,
  });
  if (result.exitCode !== 0) {
    throw new FleetmedicError('CHART_RENDER', `helm ${args.join(' ')} failed:\n${result.all}`, {
      permanent: true,
    });
  }
  return result.all ?? '';
}

/** One rendered manifest, with the template it came from. */
export interface Rendered extends KubernetesObject {
  readonly source: string;
}

/** What {@link renderChart} renders. */
export interface RenderOptions {
  readonly release: string;
  readonly namespace: string;
  readonly cacheDir: string;
  readonly valuesFiles?: readonly string[];
  readonly set?: Readonly<Record<string, string | number | boolean>>;
  /** `--set-json`: values that are lists or objects. */
  readonly setJson?: Readonly<Record<string, unknown>>;
  /** `--show-only`: templates to render (paths in the chart, `templates/inference.yaml`). */
  readonly showOnly?: readonly string[];
}

/** `helm template`: every object the chart renders for these values. */
export async function renderChart(options: RenderOptions): Promise<Rendered[]> {
  const args = ['template', options.release, CHART_DIR, '--namespace', options.namespace];
  for (const file of options.valuesFiles ?? []) args.push('--values', file);
  for (const [key, value] of Object.entries(options.set ?? {})) args.push('--set', `${key}=${value}`);
  for (const [key, value] of Object.entries(options.setJson ?? {}))
    args.push('--set-json', `${key}=${JSON.stringify(value)}`);
  for (const template of options.showOnly ?? []) args.push('--show-only', template);
  const out = await helm(args, options.cacheDir);
  const rendered: Rendered[] = [];
  for (const doc of parseAllDocuments(out)) {
    if (doc.errors.length > 0)
      throw new Error(`helm template printed invalid YAML: ${String(doc.errors[0])}`);
    const object = doc.toJS() as KubernetesObject | null;
    if (!object) continue;
    const source = /# Source: (\S+)/.exec(String(doc.commentBefore ?? ''))?.[1] ?? '?';
    rendered.push({ ...object, source });
  }
  return rendered;
}

/** The inference Deployment, Service and PDB, as the chart renders them. */
export interface InferenceManifest {
  readonly deployment: V1Deployment;
  readonly service: V1Service;
  readonly pdb: V1PodDisruptionBudget;
}

/** Options of {@link renderInferenceManifest}. */
export interface InferenceManifestOptions {
  readonly cacheDir: string;
  readonly namespace: string;
  /** The Helm release name; the objects are named `<release>-inference`. */
  readonly release: string;
  readonly replicas?: number;
  /**
   * For the embedded stack: the pods run as llama.cpp replicas of the process runner (`llama-server`
   * kind, the replica wrapper's `ready` port), on the tiny model or SmolLM2, restoring from the named
   * checkpoint store when one is given.
   */
  readonly simulation?: { readonly model?: 'tiny' | 'smollm2'; readonly checkpointStore?: string };
  readonly preStopSeconds?: number;
}

/**
 * The inference Deployment of the chart (`charts/fleetmedic/templates/inference.yaml`), rendered with
 * `helm template`: the same manifest a release installs, which the drill applies on the embedded stack
 * with `simulation` set.
 */
export async function renderInferenceManifest(options: InferenceManifestOptions): Promise<InferenceManifest> {
  const set: Record<string, string | number | boolean> = { 'inference.enabled': true };
  if (options.replicas !== undefined) set['inference.replicas'] = options.replicas;
  if (options.preStopSeconds !== undefined) set['inference.preStopSeconds'] = options.preStopSeconds;
  if (options.simulation) {
    set['inference.simulation.enabled'] = true;
    set['inference.simulation.model'] = options.simulation.model ?? 'tiny';
    if (options.simulation.checkpointStore) {
      set['inference.simulation.checkpointStore'] = options.simulation.checkpointStore;
    }
  }
  const objects = await renderChart({
    release: options.release,
    namespace: options.namespace,
    cacheDir: options.cacheDir,
    set,
    showOnly: ['templates/inference.yaml'],
  });
  const one = <T>(kind: string): T => {
    const found = objects.filter((o) => o.kind === kind);
    if (found.length !== 1)
      throw new Error(`the chart's inference.yaml rendered ${found.length} ${kind} objects`);
    const { source: _source, ...object } = found[0]!;
    return object as T;
  };
  return {
    deployment: one<V1Deployment>('Deployment'),
    service: one<V1Service>('Service'),
    pdb: one<V1PodDisruptionBudget>('PodDisruptionBudget'),
  };
}
