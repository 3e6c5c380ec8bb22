/**
 * The GPU DaemonSets a node needs before it returns to service (the NVIDIA device plugin,
 * dcgm-exporter, the fleetmedic node agent), found by label selectors on their pod templates. Pure:
 * the release activity lists the cluster's DaemonSets and the node's pods and asks
 * {@link gpuDaemonSetBlockers} what is missing.
 */
import type { V1DaemonSet, V1Node, V1Pod } from '@kubernetes/client-node';
import { selectorMatches, tolerates, type LabelSelectorLike, type TaintLike } from '../domain/capacity.js';
import { ConfigError } from '../errors.js';
import { isTerminating } from './drain-plan.js';
import { QUARANTINE_TAINT_KEY } from './remediation-labels.js';

/**
 * Pod-template selectors of the GPU DaemonSets, as the usual installs label them. A selector that
 * matches no DaemonSet in the cluster requires nothing, so the defaults cover several installs.
 */
export const DEFAULT_GPU_DAEMONSET_SELECTORS: readonly string[] = Object.freeze([
  // NVIDIA GPU Operator
  'app=nvidia-device-plugin-daemonset',
  'app=nvidia-dcgm-exporter',
  // NVIDIA's own Helm charts (k8s-device-plugin, dcgm-exporter)
  'app.kubernetes.io/name=nvidia-device-plugin',
  'app.kubernetes.io/name=dcgm-exporter',
  // fleetmedic's chart (charts/fleetmedic/templates/node-agent.yaml)
  'app.kubernetes.io/name=fleetmedic,app.kubernetes.io/component=node-agent',
]);

/** Separates the selectors of `FLEETMEDIC_GPU_DAEMONSET_SELECTORS` (a selector's own separator is `,`). */
export const GPU_DAEMONSET_SELECTOR_SEPARATOR = ';';

/** A selector as configured, with its parsed form. */
export interface GpuDaemonSetSelector {
  /** The selector as written (shown in messages). */
  readonly text: string;
  readonly selector: LabelSelectorLike;
}

/** The result of {@link parseLabelSelector}. */
export type ParsedLabelSelector = { ok: true; selector: LabelSelectorLike } | { ok: false; error: string };

const NAME = '[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?';
const DNS_SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const KEY = new RegExp(`^(${DNS_SUBDOMAIN}/)?${NAME}$`);
const VALUE = new RegExp(`^(${NAME})?$`);

function keyError(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? '' : key.slice(0, slash);
  const name = key.slice(slash + 1);
  if (!KEY.test(key) || name.length > 63 || prefix.length > 253) {
    return `${JSON.stringify(key)} is not a label key`;
  }
  return undefined;
}

function valueError(value: string): string | undefined {
  return VALUE.test(value) && value.length <= 63
    ? undefined
    : `${JSON.stringify(value)} is not a label value`;
}

/** Splits on commas outside parentheses (`a in (x,y),b` has two requirements). */
function requirements(text: string): string[] | undefined {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (depth < 0 || depth > 1) return undefined;
    if (ch === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (depth !== 0) return undefined;
  out.push(text.slice(start).trim());
  return out;
}

/**
 * Parses a Kubernetes label selector in its string form (`kubectl -l`): requirements separated by
 * commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)` or
 * `key notin (v1,v2)`. An empty selector is refused: it would match every DaemonSet.
 *
 * @example
 * parseLabelSelector('app in (a,b),!canary'); // { ok: true, selector: { matchExpressions: [...] } }
 */
export function parseLabelSelector(text: string): ParsedLabelSelector {
  if (text.trim() === '') return { ok: false, error: 'an empty selector would match every DaemonSet' };
  const parts = requirements(text);
  if (parts === undefined) return { ok: false, error: 'unbalanced parentheses' };
  const matchExpressions: { key: string; operator: string; values?: string[] }[] = [];
  for (const part of parts) {
    let m: RegExpExecArray | null;
    let key: string;
    let operator: string;
    let values: string[] = [];
    if ((m = /^!\s*(\S+)$/.exec(part))) {
      key = m[1]!;
      operator = 'DoesNotExist';
    } else if ((m = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      key = m[1]!;
      operator = m[2] === 'in' ? 'In' : 'NotIn';
      if (m[3]!.trim() === '') return { ok: false, error: `${JSON.stringify(part)} lists no value` };
      values = m[3]!.split(',').map((v) => v.trim());
    } else if ((m = /^([^\s=!]+)\s*(==|=|!=)\s*(\S*)$/.exec(part))) {
      key = m[1]!;
      operator = m[2] === '!=' ? 'NotIn' : 'In';
      values = [m[3]!];
    } else if (/^[^\s=!(),]+$/.test(part)) {
      key = part;
      operator = 'Exists';
    } else {
      return {
        ok: false,
        error:
          `${JSON.stringify(part)} is none of key, !key, key=value, key==value, key!=value, ` +
          'key in (v1,v2), key notin (v1,v2)',
      };
    }
    const error = keyError(key) ?? values.map(valueError).find((e) => e !== undefined);
    if (error !== undefined) return { ok: false, error };
    matchExpressions.push(
      operator === 'Exists' || operator === 'DoesNotExist' ? { key, operator } : { key, operator, values },
    );
  }
  return { ok: true, selector: { matchExpressions } };
}

/**
 * Validates configured selectors once, at start.
 *
 * @param source what set them, for the message (`FLEETMEDIC_GPU_DAEMONSET_SELECTORS`).
 * @throws ConfigError naming the selector that is not one, and why.
 */
export function gpuDaemonSetSelectors(
  texts: readonly string[],
  source = 'gpuDaemonSetSelectors',
): GpuDaemonSetSelector[] {
  return texts.map((text) => {
    const parsed = parseLabelSelector(text);
    if (!parsed.ok) {
      throw new ConfigError(`${source}: ${JSON.stringify(text)} is not a label selector (${parsed.error})`);
    }
    return { text, selector: parsed.selector };
  });
}

/**
 * Taints every DaemonSet pod tolerates (the DaemonSet controller adds these tolerations to its pods),
 * and fleetmedic's quarantine taint, which the release is about to remove.
 */
function ignoredTaint(taint: TaintLike, hostNetwork: boolean): boolean {
  if (taint.key === QUARANTINE_TAINT_KEY) return true;
  switch (taint.key) {
    case 'node.kubernetes.io/not-ready':
    case 'node.kubernetes.io/unreachable':
      return taint.effect === 'NoExecute';
    case 'node.kubernetes.io/unschedulable':
    case 'node.kubernetes.io/disk-pressure':
    case 'node.kubernetes.io/memory-pressure':
    case 'node.kubernetes.io/pid-pressure':
      return taint.effect === 'NoSchedule';
    case 'node.kubernetes.io/network-unavailable':
      return hostNetwork && taint.effect === 'NoSchedule';
    default:
      return false;
  }
}

const KNOWN_OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']);

/**
 * True when the DaemonSet would run a pod on the node once the quarantine is lifted: its node
 * selector, required node affinity and tolerations admit the node. Conservative: a node affinity
 * with an operator this code does not know counts as admitting the node (the DaemonSet is then
 * required, and a release waits rather than skipping a check it cannot evaluate).
 */
export function daemonSetSchedulesOn(ds: V1DaemonSet, node: V1Node): boolean {
  const pod = ds.spec?.template.spec;
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(pod?.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const terms =
    pod?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms !== undefined) {
    const fields = { 'metadata.name': node.metadata?.name ?? '' };
    const admits = terms.some((term) => {
      const exprs = term.matchExpressions ?? [];
      const byField = term.matchFields ?? [];
      // A term without requirements matches no node (as in the scheduler).
      if (exprs.length === 0 && byField.length === 0) return false;
      if ([...exprs, ...byField].some((r) => !KNOWN_OPERATORS.has(r.operator))) return true;
      return (
        selectorMatches({ matchExpressions: exprs }, labels) &&
        selectorMatches({ matchExpressions: byField }, fields)
      );
    });
    if (!admits) return false;
  }
  const tolerations = pod?.tolerations ?? [];
  const hostNetwork = pod?.hostNetwork === true;
  return (node.spec?.taints ?? []).every(
    (t) =>
      (t.effect !== 'NoSchedule' && t.effect !== 'NoExecute') ||
      ignoredTaint(t, hostNetwork) ||
      tolerates(tolerations, t),
  );
}

function isRunningAndReady(pod: V1Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    !isTerminating(pod) &&
    (pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false)
  );
}

function dsName(ds: V1DaemonSet): string {
  return `${ds.metadata?.namespace ?? '?'}/${ds.metadata?.name ?? '?'}`;
}

/**
 * What the GPU DaemonSets lack on the node, one line per DaemonSet, empty when nothing: every
 * DaemonSet (in any namespace) whose pod template matches one of `selectors` and that would run on
 * the node ({@link daemonSetSchedulesOn}) must have a Running and Ready pod there. A selector that
 * matches no DaemonSet requires nothing (a cluster without dcgm-exporter, a simulated cluster); a
 * DaemonSet being deleted is not waited for.
 *
 * @param daemonSets every DaemonSet of the cluster.
 * @param pods the pods on the node.
 */
export function gpuDaemonSetBlockers(
  node: V1Node,
  selectors: readonly GpuDaemonSetSelector[],
  daemonSets: readonly V1DaemonSet[],
  pods: readonly V1Pod[],
): string[] {
  const blockers: string[] = [];
  for (const ds of daemonSets) {
    if (ds.metadata?.deletionTimestamp) continue;
    const labels = ds.spec?.template.metadata?.labels ?? {};
    const matched = selectors.find((s) => selectorMatches(s.selector, labels));
    if (matched === undefined || !daemonSetSchedulesOn(ds, node)) continue;
    const uid = ds.metadata?.uid;
    const own = pods.filter((p) =>
      p.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet' && o.uid === uid),
    );
    if (own.some(isRunningAndReady)) continue;
    blockers.push(
      own.length === 0
        ? `GPU DaemonSet ${dsName(ds)} (${matched.text}) has no pod on the node ` +
            `(does it tolerate the ${QUARANTINE_TAINT_KEY} taint?)`
        : `GPU DaemonSet ${dsName(ds)} (${matched.text}) has no Running and Ready pod on the node`,
    );
  }
  return blockers;
}
