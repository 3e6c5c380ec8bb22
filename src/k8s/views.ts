import type {
  V1Container,
  V1LabelSelector,
  V1Node,
  V1NodeSelectorTerm,
  V1Pod,
  V1PodAffinityTerm,
} from '@kubernetes/client-node';
import { controllerOf, isDaemonSetPod, isMirrorPod, isTerminating } from './drain-plan.js';
import { GPU_RESOURCE } from './labels.js';
import {
  parseCordonRecord,
  parseRemediations,
  plainTaint,
  type CordonRecord,
  type PlainTaint,
} from './node-ownership.js';
import { quantityOrZero } from './quantity.js';
import { CORDON_ANNOTATION, QUARANTINED_LABEL, REMEDIATIONS_ANNOTATION } from './remediation-labels.js';

/**
 * Compact, JSON-able views of nodes and pods: what workflows and the pure decision functions need,
 * small enough to pass through Temporal payloads for a fleet of 1,500 nodes.
 */

/** Labels a node summary always carries; a list call can ask for more keys. */
export const SUMMARY_LABEL_PREFIXES = ['fleetmedic.io/', 'nvidia.com/gpu.product'] as const;
export const SUMMARY_LABEL_KEYS = [
  'kubernetes.io/hostname',
  'node.kubernetes.io/instance-type',
  'topology.kubernetes.io/zone',
] as const;

/** One node in a fleet listing. */
export interface NodeSummary {
  name: string;
  unschedulable: boolean;
  /** The kubelet's Ready condition is True. */
  ready: boolean;
  /** Carries fleetmedic's quarantine label. */
  quarantined: boolean;
  /** The workflow recorded in the cordon annotation, if any. */
  quarantinedBy: string | null;
  taints: PlainTaint[];
  labels: Record<string, string>;
  gpuCapacity: number;
  gpuAllocatable: number;
  /** Allocatable cpu (cores), memory (bytes) and pods. */
  allocatable: { cpu: number; memory: number; pods: number };
}

/** One node in full: the summary plus all labels, the ownership record and the remediation history. */
export interface NodeView extends NodeSummary {
  exists: true;
  /** The parsed `fleetmedic.io/cordon` record, or null when absent or unreadable. */
  cordon: CordonRecord | null;
  /** Why the cordon annotation could not be read (present only then). */
  cordonError?: string;
  /** Remediation timestamps, oldest first. */
  remediations: string[];
  /** Why the remediations annotation could not be read (present only then). */
  remediationsError?: string;
}

/** What `getNode` returns for a node that does not exist. */
export interface MissingNodeView {
  name: string;
  exists: false;
}

function isReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function summaryLabels(labels: Record<string, string>, extraKeys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (
      SUMMARY_LABEL_PREFIXES.some((p) => key.startsWith(p)) ||
      (SUMMARY_LABEL_KEYS as readonly string[]).includes(key) ||
      extraKeys.includes(key)
    ) {
      out[key] = value;
    }
  }
  return out;
}

/** A node's summary; `extraLabelKeys` adds labels beyond the default subset (for affinity checks). */
export function nodeSummary(node: V1Node, extraLabelKeys: readonly string[] = []): NodeSummary {
  const allocatable = node.status?.allocatable ?? {};
  const parsed = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
  return {
    name: node.metadata?.name ?? '',
    unschedulable: node.spec?.unschedulable === true,
    ready: isReady(node),
    quarantined: node.metadata?.labels?.[QUARANTINED_LABEL] !== undefined,
    quarantinedBy: parsed.kind === 'ok' ? parsed.record.workflowId : null,
    taints: (node.spec?.taints ?? []).map(plainTaint),
    labels: summaryLabels(node.metadata?.labels ?? {}, extraLabelKeys),
    gpuCapacity: quantityOrZero(node.status?.capacity?.[GPU_RESOURCE]),
    gpuAllocatable: quantityOrZero(allocatable[GPU_RESOURCE]),
    allocatable: {
      cpu: quantityOrZero(allocatable.cpu),
      memory: quantityOrZero(allocatable.memory),
      pods: quantityOrZero(allocatable.pods),
    },
  };
}

/** A node in full, with every label. */
export function nodeView(node: V1Node): NodeView {
  const annotations = node.metadata?.annotations ?? {};
  const cordon = parseCordonRecord(annotations[CORDON_ANNOTATION]);
  const remediations = parseRemediations(annotations[REMEDIATIONS_ANNOTATION]);
  const view: NodeView = {
    ...nodeSummary(node),
    labels: { ...(node.metadata?.labels ?? {}) },
    exists: true,
    cordon: cordon.kind === 'ok' ? cordon.record : null,
    remediations: remediations.ok ? remediations.at : [],
  };
  if (cordon.kind === 'invalid') view.cordonError = cordon.error;
  if (!remediations.ok) view.remediationsError = remediations.error;
  return view;
}

/** A toleration as plain JSON. */
export interface TolerationView {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

/** A label selector as plain JSON. */
export interface LabelSelectorView {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A pod (anti-)affinity term as plain JSON. */
export interface PodAffinityTermView {
  topologyKey: string;
  labelSelector?: LabelSelectorView;
  namespaces?: string[];
  namespaceSelector?: LabelSelectorView;
}

/** A node selector term as plain JSON. */
export interface NodeSelectorTermView {
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
  matchFields?: { key: string; operator: string; values?: string[] }[];
}

/** A pod as a capacity check sees it. */
export interface PodView {
  name: string;
  namespace: string;
  uid: string;
  phase: string;
  ready: boolean;
  terminating: boolean;
  /** Kind and name of the controlling owner (ReplicaSet, StatefulSet, DaemonSet, Job, Node...). */
  ownerKind: string | null;
  ownerName: string | null;
  daemonSet: boolean;
  mirror: boolean;
  /**
   * What the scheduler reserves for the pod: max(sum of containers + sidecars, largest init step) +
   * overhead, per resource; cpu in cores, memory in bytes, extended resources as counts.
   */
  requests: Record<string, number>;
  tolerations: TolerationView[];
  nodeSelector: Record<string, string>;
  /** Only the hard constraints: what must hold on the node a replacement lands on. */
  affinity: {
    requiredNodeSelectorTerms?: NodeSelectorTermView[];
    podAffinity?: PodAffinityTermView[];
    podAntiAffinity?: PodAffinityTermView[];
  };
  labels: Record<string, string>;
  priorityClassName?: string;
}

function addRequests(into: Map<string, number>, requests: Record<string, string> | undefined): void {
  for (const [name, quantity] of Object.entries(requests ?? {})) {
    into.set(name, (into.get(name) ?? 0) + quantityOrZero(quantity));
  }
}

/**
 * A pod's effective requests as the scheduler computes them: app containers and restartable init
 * containers (sidecars) run together; each regular init container runs alone beside the sidecars
 * started before it; the pod needs the larger of the two, plus its runtime overhead.
 */
export function podRequests(pod: V1Pod): Record<string, number> {
  const main = new Map<string, number>();
  for (const c of pod.spec?.containers ?? []) addRequests(main, c.resources?.requests);
  const sidecars = new Map<string, number>();
  const initPeak = new Map<string, number>();
  for (const c of pod.spec?.initContainers ?? ([] as V1Container[])) {
    if (c.restartPolicy === 'Always') {
      addRequests(sidecars, c.resources?.requests);
      continue;
    }
    const step = new Map(sidecars);
    addRequests(step, c.resources?.requests);
    for (const [name, value] of step) initPeak.set(name, Math.max(initPeak.get(name) ?? 0, value));
  }
  const total = new Map<string, number>();
  for (const [name, value] of sidecars) main.set(name, (main.get(name) ?? 0) + value);
  for (const name of new Set([...main.keys(), ...initPeak.keys()])) {
    total.set(name, Math.max(main.get(name) ?? 0, initPeak.get(name) ?? 0));
  }
  addRequests(total, pod.spec?.overhead);
  return Object.fromEntries(total);
}

function selectorView(selector: V1LabelSelector | undefined): LabelSelectorView | undefined {
  if (!selector) return undefined;
  const out: LabelSelectorView = {};
  if (selector.matchLabels) out.matchLabels = { ...selector.matchLabels };
  if (selector.matchExpressions) {
    out.matchExpressions = selector.matchExpressions.map((e) => ({
      key: e.key,
      operator: e.operator,
      ...(e.values ? { values: [...e.values] } : {}),
    }));
  }
  return out;
}

function podTermView(term: V1PodAffinityTerm): PodAffinityTermView {
  const out: PodAffinityTermView = { topologyKey: term.topologyKey };
  const labelSelector = selectorView(term.labelSelector);
  if (labelSelector) out.labelSelector = labelSelector;
  if (term.namespaces) out.namespaces = [...term.namespaces];
  const namespaceSelector = selectorView(term.namespaceSelector);
  if (namespaceSelector) out.namespaceSelector = namespaceSelector;
  return out;
}

function nodeTermView(term: V1NodeSelectorTerm): NodeSelectorTermView {
  const req = (r: { key: string; operator: string; values?: string[] }) => ({
    key: r.key,
    operator: r.operator,
    ...(r.values ? { values: [...r.values] } : {}),
  });
  const out: NodeSelectorTermView = {};
  if (term.matchExpressions) out.matchExpressions = term.matchExpressions.map(req);
  if (term.matchFields) out.matchFields = term.matchFields.map(req);
  return out;
}

/** A pod's compact view. */
export function podView(pod: V1Pod): PodView {
  const owner = controllerOf(pod);
  const affinity = pod.spec?.affinity;
  const view: PodView = {
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? '',
    uid: pod.metadata?.uid ?? '',
    phase: pod.status?.phase ?? 'Unknown',
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    terminating: isTerminating(pod),
    ownerKind: owner?.kind ?? null,
    ownerName: owner?.name ?? null,
    daemonSet: isDaemonSetPod(pod),
    mirror: isMirrorPod(pod),
    requests: podRequests(pod),
    tolerations: (pod.spec?.tolerations ?? []).map((t) => {
      const out: TolerationView = {};
      if (t.key !== undefined) out.key = t.key;
      if (t.operator !== undefined) out.operator = t.operator;
      if (t.value !== undefined) out.value = t.value;
      if (t.effect !== undefined) out.effect = t.effect;
      if (t.tolerationSeconds !== undefined) out.tolerationSeconds = t.tolerationSeconds;
      return out;
    }),
    nodeSelector: { ...(pod.spec?.nodeSelector ?? {}) },
    affinity: {},
    labels: { ...(pod.metadata?.labels ?? {}) },
  };
  const nodeTerms = affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (nodeTerms) view.affinity.requiredNodeSelectorTerms = nodeTerms.map(nodeTermView);
  const podAff = affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (podAff) view.affinity.podAffinity = podAff.map(podTermView);
  const podAnti = affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (podAnti) view.affinity.podAntiAffinity = podAnti.map(podTermView);
  if (pod.spec?.priorityClassName) view.priorityClassName = pod.spec.priorityClassName;
  return view;
}
