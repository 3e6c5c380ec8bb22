/**
 * The drill's preflight: whether a Deployment can lose a pod and a node without clients noticing.
 * Pure; the drill refuses to inject anything when a check fails, and the report lists every finding.
 */
import type {
  V1Deployment,
  V1Node,
  V1Pod,
  V1PodAffinityTerm,
  V1PodDisruptionBudget,
} from '@kubernetes/client-node';
import { isTerminating } from '../k8s/drain-plan.js';
import { GPU_RESOURCE } from '../k8s/labels.js';
import { coveringPdbs } from '../k8s/pdb.js';
import { quantityOrZero } from '../k8s/quantity.js';
import type { PreflightFinding } from './report.js';

/** The label every node carries with its own name: required anti-affinity on it spreads replicas. */
export const HOSTNAME_TOPOLOGY = 'kubernetes.io/hostname';

/** What the preflight reads: the Deployment, the PDBs of its namespace, its pods and every node. */
export interface PreflightInput {
  readonly deployment: V1Deployment;
  readonly pdbs: readonly V1PodDisruptionBudget[];
  readonly pods: readonly V1Pod[];
  readonly nodes: readonly V1Node[];
}

function isReady(o: { status?: { conditions?: { type: string; status: string }[] } }): boolean {
  return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** A Ready node that takes new pods and offers GPUs. */
export function isSchedulableGpuNode(node: V1Node): boolean {
  return (
    node.spec?.unschedulable !== true &&
    isReady(node) &&
    quantityOrZero(node.status?.allocatable?.[GPU_RESOURCE]) > 0
  );
}

function selfAntiAffinity(term: V1PodAffinityTerm, labels: Record<string, string>): boolean {
  const wanted = term.labelSelector?.matchLabels ?? {};
  return (
    term.topologyKey === HOSTNAME_TOPOLOGY &&
    Object.keys(wanted).length > 0 &&
    Object.entries(wanted).every(([k, v]) => labels[k] === v)
  );
}

function antiAffinityFinding(d: V1Deployment): PreflightFinding {
  const labels = d.spec?.template.metadata?.labels ?? {};
  const anti = d.spec?.template.spec?.affinity?.podAntiAffinity;
  const required = anti?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  if (required.some((t) => selfAntiAffinity(t, labels))) {
    return { check: 'anti-affinity', ok: true, detail: `required anti-affinity on ${HOSTNAME_TOPOLOGY}` };
  }
  const preferred = anti?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  const detail = preferred.some((t) => selfAntiAffinity(t.podAffinityTerm, labels))
    ? 'anti-affinity preferred, not required'
    : `no required anti-affinity on ${HOSTNAME_TOPOLOGY}`;
  return { check: 'anti-affinity', ok: false, detail };
}

function maxUnavailableFinding(d: V1Deployment): PreflightFinding {
  const strategy = d.spec?.strategy;
  // A Recreate Deployment, or a RollingUpdate without the field (default 25 %), may drop replicas.
  const value =
    strategy?.type === 'Recreate' ? 'Recreate' : (strategy?.rollingUpdate?.maxUnavailable ?? '25%');
  const zero = value === 0 || value === '0' || value === '0%';
  return zero
    ? { check: 'max-unavailable', ok: true, detail: 'maxUnavailable is 0' }
    : { check: 'max-unavailable', ok: false, detail: `maxUnavailable is not 0 (${String(value)})` };
}

/**
 * Every preflight check of the drill, in a fixed order; a failed one's `detail` is the refusal reason
 * in plain words ("no PDB", "anti-affinity preferred, not required", "maxUnavailable is not 0",
 * "only 3 schedulable GPU nodes (needs replicas + 1 = 4)", "replicas not on distinct nodes").
 * Fails safe: what cannot be read (no replica count, a pod not yet scheduled) fails its check.
 *
 * @example preflightDrill({ deployment, pdbs: [], pods, nodes }).filter((f) => !f.ok)
 *   // [{ check: 'pdb', ok: false, detail: 'no PDB' }]
 */
export function preflightDrill(input: PreflightInput): PreflightFinding[] {
  const { deployment: d } = input;
  const namespace = d.metadata?.namespace ?? '';
  const labels = d.spec?.template.metadata?.labels ?? {};
  const replicas = d.spec?.replicas ?? 1;
  const findings: PreflightFinding[] = [];

  const pdbs = coveringPdbs({ namespace, labels }, input.pdbs);
  findings.push(
    pdbs.length > 0
      ? { check: 'pdb', ok: true, detail: `PDB ${pdbs.map((p) => p.metadata?.name ?? '?').join(', ')}` }
      : { check: 'pdb', ok: false, detail: 'no PDB' },
  );
  findings.push(antiAffinityFinding(d));
  findings.push(maxUnavailableFinding(d));

  const schedulable = input.nodes.filter(isSchedulableGpuNode).length;
  const needed = replicas + 1;
  findings.push(
    schedulable >= needed
      ? { check: 'schedulable-nodes', ok: true, detail: `${schedulable} schedulable GPU nodes` }
      : {
          check: 'schedulable-nodes',
          ok: false,
          detail: `only ${schedulable} schedulable GPU nodes (needs replicas + 1 = ${needed})`,
        },
  );

  const live = input.pods.filter((p) => !isTerminating(p));
  const nodes = live.map((p) => p.spec?.nodeName);
  const placed = nodes.filter((n): n is string => typeof n === 'string' && n !== '');
  const distinct = new Set(placed).size;
  const spread = live.length === replicas && placed.length === live.length && distinct === live.length;
  findings.push(
    spread
      ? { check: 'distinct-nodes', ok: true, detail: `${replicas} replicas on ${distinct} nodes` }
      : {
          check: 'distinct-nodes',
          ok: false,
          detail: `replicas not on distinct nodes (${live.length} of ${replicas} pods, on ${distinct} nodes)`,
        },
  );
  return findings;
}

/** The refusal reasons of failed findings, in order; empty when the drill may go on. */
export function refusalReasons(findings: readonly PreflightFinding[]): string[] {
  return findings.filter((f) => !f.ok).map((f) => f.detail);
}
