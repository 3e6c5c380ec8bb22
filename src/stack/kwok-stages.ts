import fs from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { ToolchainError } from '../errors.js';
import { PROCESS_LABEL } from '../k8s/labels.js';
import { KWOK_VERSION } from '../toolchain/tools.js';

/**
 * kwok's default stages, as kwokctl would use them for the binary runtime: the fast node stages
 * (initialize, heartbeat with lease) and the fast pod stages (ready, complete, delete). They are read
 * from the kwok module's own files (extracted into the toolchain cache by `fleetmedic toolchain`),
 * never written out here: a kwokctl configuration that supplies any Stage gets none of the defaults.
 */
export const KWOK_DEFAULT_STAGE_FILES = [
  'kustomize/stage/node/fast/node-initialize.yaml',
  'kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
  'kustomize/stage/pod/fast/pod-ready.yaml',
  'kustomize/stage/pod/fast/pod-complete.yaml',
  'kustomize/stage/pod/fast/pod-delete.yaml',
] as const;

/** Where `fleetmedic toolchain` keeps kwok's default stage files. */
export function kwokStagesDir(cacheDir: string): string {
  return path.join(cacheDir, 'toolchain', `kwok-v${KWOK_VERSION}`, 'stages');
}

/** A kwok Stage document, as far as fleetmedic reads and changes it. */
export interface KwokStage {
  apiVersion: string;
  kind: 'Stage';
  metadata: { name: string };
  spec: {
    resourceRef: { apiGroup: string; kind: string };
    selector?: { matchExpressions?: StageExpression[] };
    delay?: Record<string, unknown>;
    next: Record<string, unknown>;
    [key: string]: unknown;
  };
}

export interface StageExpression {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** Reads kwok's default stages from the toolchain cache. */
export async function readKwokDefaultStages(cacheDir: string): Promise<KwokStage[]> {
  const dir = kwokStagesDir(cacheDir);
  const stages: KwokStage[] = [];
  for (const file of KWOK_DEFAULT_STAGE_FILES) {
    const where = path.join(dir, path.basename(file));
    let text: string;
    try {
      text = await fs.readFile(where, 'utf8');
    } catch {
      throw new ToolchainError(
        `kwok's default stages are not in the toolchain cache (${where} is missing); run \`fleetmedic toolchain\``,
      );
    }
    stages.push(parseStage(text, where));
  }
  return stages;
}

function parseStage(text: string, where: string): KwokStage {
  const doc = YAML.parse(text) as Partial<KwokStage> | null;
  if (doc?.kind !== 'Stage' || !doc.metadata?.name || !doc.spec?.resourceRef || !doc.spec.next) {
    throw new ToolchainError(
      `${where} is not a kwok Stage (kind, metadata.name, spec.resourceRef, spec.next)`,
    );
  }
  return doc as KwokStage;
}

/** The selector expression that matches pods fleetmedic's process runner serves. */
const PROCESS_POD: StageExpression = {
  key: `.metadata.labels["${PROCESS_LABEL}"]`,
  operator: 'Exists',
};

/**
 * kwok's default stages changed for pods that the process runner serves (label
 * `fleetmedic.io/process`): kwok must neither mark them Ready (the runner does, from the pod's
 * readiness probe against its real process) nor delete them once terminating (the runner does, after
 * preStop, SIGTERM, the grace period and SIGKILL, as a kubelet would). A stage of fleetmedic's own
 * starts such pods: Running with their pod IP from kwok's pool, not Ready, containers not ready.
 * Every other pod and every node is handled exactly as by kwok's defaults.
 */
export function processRunnerStages(defaults: readonly KwokStage[]): KwokStage[] {
  const byName = new Map(defaults.map((s) => [s.metadata.name, s]));
  for (const name of ['pod-ready', 'pod-delete']) {
    if (!byName.has(name)) throw new ToolchainError(`kwok's default stages have no ${name} stage`);
  }
  const out = defaults.map((stage) => structuredClone(stage));
  for (const stage of out) {
    if (stage.metadata.name !== 'pod-ready' && stage.metadata.name !== 'pod-delete') continue;
    stage.spec.selector ??= {};
    stage.spec.selector.matchExpressions = [
      ...(stage.spec.selector.matchExpressions ?? []),
      { ...PROCESS_POD, operator: 'DoesNotExist' },
    ];
  }
  out.push(processPodStartStage());
  return out;
}

/**
 * Starts a runner pod as a kubelet would before its containers pass their readiness probes: phase
 * Running, the pod and host IPs kwok assigns (from the node's pod range in 127.0.0.0/8), Ready and
 * ContainersReady False, each container running but not ready.
 */
function processPodStartStage(): KwokStage {
  const statusTemplate = [
    '{{ $now := Now }}',
    'conditions:',
    '- lastTransitionTime: {{ $now | Quote }}',
    '  status: "True"',
    '  type: Initialized',
    '- lastTransitionTime: {{ $now | Quote }}',
    '  status: "False"',
    '  reason: ProcessStarting',
    '  type: Ready',
    '- lastTransitionTime: {{ $now | Quote }}',
    '  status: "False"',
    '  reason: ProcessStarting',
    '  type: ContainersReady',
    'containerStatuses:',
    '{{ range .spec.containers }}',
    '- image: {{ .image | Quote }}',
    '  name: {{ .name | Quote }}',
    '  ready: false',
    '  started: false',
    '  restartCount: 0',
    '  state:',
    '    waiting:',
    '      reason: ContainerCreating',
    '{{ end }}',
    '{{ with NodeIPsWith .spec.nodeName }}',
    'hostIP: {{ index . 0 | Quote }}',
    'hostIPs:',
    '{{ range . }}',
    '- ip: {{ . | Quote }}',
    '{{ end }}',
    '{{ end }}',
    '{{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}',
    'podIP: {{ index . 0 | Quote }}',
    'podIPs:',
    '{{ range . }}',
    '- ip: {{ . | Quote }}',
    '{{ end }}',
    '{{ end }}',
    'phase: Running',
    'startTime: {{ $now | Quote }}',
  ].join('\n');
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name: 'fleetmedic-process-pod-start' },
    spec: {
      resourceRef: { apiGroup: 'v1', kind: 'Pod' },
      selector: {
        matchExpressions: [
          { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' },
          { key: '.status.phase', operator: 'In', values: ['Pending'] },
          PROCESS_POD,
        ],
      },
      next: { statusTemplate },
    },
  };
}
