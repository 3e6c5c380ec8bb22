/**
 * Capacity check before a drain: do the pods that an eviction would move fit on the remaining
 * schedulable nodes?
 *
 * A small, deterministic subset of the kube-scheduler's filters, enough to refuse a drain that would
 * strand pods: resource requests (cpu, memory, `nvidia.com/gpu`, any extended resource, pod slots)
 * against allocatable minus what is already requested, unschedulable and not-Ready nodes,
 * NoSchedule/NoExecute taints against tolerations, `nodeSelector`, required node affinity, and required
 * pod (anti-)affinity against pods already on a node and pods placed earlier in the same simulation. Placement is greedy
 * first-fit, largest GPU request first, so the answer is conservative: a "does not fit" may be a
 * packing the real scheduler would find, a "fits" is a placement that exists.
 *
 * Not modelled (documented so callers know): host ports, volume topology, topology spread constraints,
 * and namespace labels (a `namespaceSelector` that is not empty is
 * treated as matching every namespace, which only adds conflicts).
 *
 * The interfaces below are structural subsets of `@kubernetes/client-node`'s `V1Pod` and `V1Node`, so
 * callers pass the API objects as they are.
 */
import { FleetmedicError } from '../errors.js';

/** A label selector (`V1LabelSelector`). */
export interface LabelSelectorLike {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: string;
    readonly values?: readonly string[];
  }[];
}

/** A pod (anti-)affinity term (`V1PodAffinityTerm`). */
export interface PodAffinityTermLike {
  readonly labelSelector?: LabelSelectorLike;
  readonly namespaces?: readonly string[];
  readonly namespaceSelector?: LabelSelectorLike;
  readonly topologyKey: string;
}

/** A node selector requirement (`V1NodeSelectorRequirement`). */
export interface NodeSelectorRequirementLike {
  readonly key: string;
  readonly operator: string;
  readonly values?: readonly string[];
}

/** A toleration (`V1Toleration`). */
export interface TolerationLike {
  readonly key?: string;
  readonly operator?: string;
  readonly value?: string;
  readonly effect?: string;
}

/** A taint (`V1Taint`). */
export interface TaintLike {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
}

/** Resource requirements of a container (`V1ResourceRequirements`). */
export interface ResourceRequirementsLike {
  readonly requests?: Readonly<Record<string, string>>;
  readonly limits?: Readonly<Record<string, string>>;
}

/** The fields of a `V1Pod` the capacity check reads. */
export interface PodLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly ownerReferences?: readonly { readonly kind: string; readonly name: string }[];
  };
  readonly spec?: {
    readonly nodeName?: string;
    readonly nodeSelector?: Readonly<Record<string, string>>;
    readonly tolerations?: readonly TolerationLike[];
    readonly containers: readonly { readonly resources?: ResourceRequirementsLike }[];
    readonly initContainers?: readonly { readonly resources?: ResourceRequirementsLike }[];
    readonly overhead?: Readonly<Record<string, string>>;
    readonly affinity?: {
      readonly nodeAffinity?: {
        readonly requiredDuringSchedulingIgnoredDuringExecution?: {
          readonly nodeSelectorTerms: readonly {
            readonly matchExpressions?: readonly NodeSelectorRequirementLike[];
            readonly matchFields?: readonly NodeSelectorRequirementLike[];
          }[];
        };
      };
      readonly podAffinity?: {
        readonly requiredDuringSchedulingIgnoredDuringExecution?: readonly PodAffinityTermLike[];
      };
      readonly podAntiAffinity?: {
        readonly requiredDuringSchedulingIgnoredDuringExecution?: readonly PodAffinityTermLike[];
      };
    };
  };
  readonly status?: { readonly phase?: string };
}

/** The fields of a `V1Node` the capacity check and the node health check read. */
export interface NodeLike {
  readonly metadata?: {
    readonly name?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly spec?: {
    readonly unschedulable?: boolean;
    readonly taints?: readonly TaintLike[];
  };
  readonly status?: {
    readonly allocatable?: Readonly<Record<string, string>>;
    readonly capacity?: Readonly<Record<string, string>>;
    readonly conditions?: readonly { readonly type: string; readonly status: string }[];
  };
}

// ---------------------------------------------------------------------------------------------------
// Quantities

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|n|u|m|k|M|G|T|P|E)?$/;

const SUFFIX: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Parses a Kubernetes resource quantity ("500m", "2Gi", "1.5", "8", "1e3", "100M") into a number of
 * base units (cores, bytes, devices).
 *
 * `@kubernetes/client-node` 1.x has `quantityToScalar`, but it returns `number | bigint`, rejects
 * fractional binary quantities ("1.5Gi") and exponents; this parser accepts the full grammar of
 * `resource.Quantity`.
 *
 * @throws FleetmedicError `INVALID_QUANTITY` (permanent) for anything else
 * @example parseQuantity('500m') // 0.5
 * @example parseQuantity('2Gi') // 2147483648
 */
export function parseQuantity(quantity: string): number {
  const match = QUANTITY.exec(quantity.trim());
  if (match === null) {
    throw new FleetmedicError('INVALID_QUANTITY', `not a Kubernetes quantity: ${JSON.stringify(quantity)}`, {
      permanent: true,
    });
  }
  const base = Number(match[1]);
  const suffix = match[2];
  if (suffix === undefined) return base;
  if (/^[eE][+-]?\d+$/.test(suffix)) return base * 10 ** Number(suffix.slice(1));
  return base * (SUFFIX[suffix] ?? 1);
}

/**
 * A quantity as an integer in the unit the scheduler compares: millicores for `cpu`, whole units for
 * everything else, rounded up as Kubernetes rounds requests.
 */
function scaled(resource: string, quantity: string): number {
  const value = parseQuantity(quantity);
  // The epsilon absorbs binary floating point noise ("0.1" * 1000) before rounding up.
  return resource === 'cpu' ? Math.ceil(value * 1000 - 1e-9) : Math.ceil(value - 1e-9);
}

type Resources = Map<string, number>;

function addInto(target: Resources, source: Resources): void {
  for (const [k, v] of source) target.set(k, (target.get(k) ?? 0) + v);
}

function containerRequests(resources: ResourceRequirementsLike | undefined): Resources {
  const out: Resources = new Map();
  // The API server copies limits into unset requests, but objects built by hand may not have that.
  const names = new Set([...Object.keys(resources?.limits ?? {}), ...Object.keys(resources?.requests ?? {})]);
  for (const name of names) {
    const q = resources?.requests?.[name] ?? resources?.limits?.[name];
    if (q !== undefined) out.set(name, scaled(name, q));
  }
  return out;
}

/**
 * A pod's effective requests as the scheduler computes them: the larger of the sum over containers
 * and the largest init container, per resource, plus `spec.overhead`.
 *
 * @throws FleetmedicError `INVALID_QUANTITY` when a request cannot be parsed
 */
export function podRequests(pod: PodLike): ReadonlyMap<string, number> {
  const sum: Resources = new Map();
  for (const c of pod.spec?.containers ?? []) addInto(sum, containerRequests(c.resources));
  for (const c of pod.spec?.initContainers ?? []) {
    for (const [k, v] of containerRequests(c.resources)) sum.set(k, Math.max(sum.get(k) ?? 0, v));
  }
  for (const [k, q] of Object.entries(pod.spec?.overhead ?? {})) sum.set(k, (sum.get(k) ?? 0) + scaled(k, q));
  return sum;
}

// ---------------------------------------------------------------------------------------------------
// Matching

/** True when the labels satisfy the selector. An empty selector matches everything. */
export function selectorMatches(
  selector: LabelSelectorLike | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const expr of selector.matchExpressions ?? []) {
    if (!requirementMatches(expr, labels[expr.key])) return false;
  }
  return true;
}

function requirementMatches(req: NodeSelectorRequirementLike, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const bound = Number(values[0]);
      const actual = Number(value);
      if (value === undefined || !Number.isInteger(bound) || !Number.isInteger(actual)) return false;
      return req.operator === 'Gt' ? actual > bound : actual < bound;
    }
    default:
      // An operator we do not know cannot be shown to match; failing keeps the answer conservative.
      return false;
  }
}

/** True when some toleration tolerates the taint (same rules as the scheduler). */
export function tolerates(tolerations: readonly TolerationLike[], taint: TaintLike): boolean {
  return tolerations.some((t) => {
    if (t.effect !== undefined && t.effect !== '' && t.effect !== taint.effect) return false;
    const operator = t.operator ?? 'Equal';
    if (t.key === undefined || t.key === '') return operator === 'Exists';
    if (t.key !== taint.key) return false;
    return operator === 'Exists' || (t.value ?? '') === (taint.value ?? '');
  });
}

function nodeName(node: NodeLike): string {
  return node.metadata?.name ?? '';
}

function podKey(pod: PodLike): string {
  return `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? '?'}`;
}

/** True when the node's Ready condition is True. */
export function isNodeReady(node: NodeLike): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function isDaemonSetPod(pod: PodLike): boolean {
  return pod.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet') ?? false;
}

function isMirrorPod(pod: PodLike): boolean {
  return pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined;
}

function isTerminal(pod: PodLike): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** The pods a drain of `nodeName` evicts: bound to it, not finished, not DaemonSet or mirror pods. */
export function podsToEvict(pods: readonly PodLike[], drainingNode: string): PodLike[] {
  return pods.filter(
    (p) => p.spec?.nodeName === drainingNode && !isTerminal(p) && !isDaemonSetPod(p) && !isMirrorPod(p),
  );
}

// ---------------------------------------------------------------------------------------------------
// The check

/** Where a pod would go. */
export interface Placement {
  readonly pod: string;
  readonly node: string;
}

/** A pod that fits nowhere, with the reason each candidate node refused it. */
export interface UnplacedPod {
  readonly pod: string;
  /** One line per node, e.g. `gpu-2: insufficient nvidia.com/gpu (requested 8, free 0)`. */
  readonly reasons: readonly string[];
  /** A scheduler-style summary, e.g. `0/3 nodes fit: 2 insufficient nvidia.com/gpu, 1 unschedulable`. */
  readonly summary: string;
}

/** The result of {@link podsFitElsewhere}. */
export interface CapacityCheck {
  /** True when every pod to evict has a place. */
  readonly fits: boolean;
  readonly placements: readonly Placement[];
  readonly unplaced: readonly UnplacedPod[];
}

interface Candidate {
  readonly node: NodeLike;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Allocatable minus requested, per resource; `undefined` when the node's numbers are unreadable. */
  readonly free: Resources | undefined;
  readonly pods: PodLike[];
  readonly refusal: string | undefined;
}

/**
 * Whether the pods a drain of `drainingNode` would evict fit on the other nodes.
 *
 * @param pods - every pod bound to a node (all namespaces); the ones on `drainingNode` are the pods to
 *   evict (minus DaemonSet, mirror and finished pods), the others are the load already on each node
 * @param nodes - every node that could take pods (the draining node is skipped)
 * @param drainingNode - the name of the node about to be drained
 * @returns the placements found and, for each pod that fits nowhere, why every node refused it
 */
export function podsFitElsewhere(
  pods: readonly PodLike[],
  nodes: readonly NodeLike[],
  drainingNode: string,
): CapacityCheck {
  const candidates: Candidate[] = nodes
    .filter((n) => nodeName(n) !== drainingNode)
    .map((node) => {
      const name = nodeName(node);
      const onNode = pods.filter((p) => p.spec?.nodeName === name && !isTerminal(p));
      let free: Resources | undefined;
      let refusal: string | undefined;
      try {
        free = new Map();
        for (const [k, q] of Object.entries(node.status?.allocatable ?? {})) free.set(k, scaled(k, q));
        // Every pod takes one of the node's pod slots; a node that reports no limit has no limit.
        if (!free.has('pods')) free.set('pods', Number.POSITIVE_INFINITY);
        for (const p of onNode)
          for (const [k, v] of withPodSlot(podRequests(p))) free.set(k, (free.get(k) ?? 0) - v);
      } catch (err) {
        free = undefined;
        refusal = `cannot read its resources (${(err as Error).message})`;
      }
      if (node.spec?.unschedulable === true) refusal = 'unschedulable (cordoned)';
      else if (!isNodeReady(node)) refusal = 'not Ready';
      return { node, name, labels: node.metadata?.labels ?? {}, free, pods: onNode, refusal };
    });

  const evictees = podsToEvict(pods, drainingNode);
  const sized = evictees.map((pod) => {
    try {
      return { pod, requests: withPodSlot(podRequests(pod)), error: undefined };
    } catch (err) {
      return { pod, requests: new Map<string, number>(), error: (err as Error).message };
    }
  });
  // Largest GPU (then cpu, then memory) request first: first-fit decreasing packs scarce GPUs better.
  const order = (r: ReadonlyMap<string, number>): number[] => [
    r.get('nvidia.com/gpu') ?? 0,
    r.get('cpu') ?? 0,
    r.get('memory') ?? 0,
  ];
  sized.sort((a, b) => {
    const oa = order(a.requests);
    const ob = order(b.requests);
    for (let i = 0; i < oa.length; i++) if (oa[i] !== ob[i]) return (ob[i] ?? 0) - (oa[i] ?? 0);
    return podKey(a.pod) < podKey(b.pod) ? -1 : 1;
  });

  const placements: Placement[] = [];
  const unplaced: UnplacedPod[] = [];
  for (const { pod, requests, error } of sized) {
    if (error !== undefined) {
      const reason = `its requests cannot be read (${error})`;
      unplaced.push({ pod: podKey(pod), reasons: [reason], summary: `cannot evaluate: ${reason}` });
      continue;
    }
    const reasons: string[] = [];
    const tally = new Map<string, number>();
    let placed = false;
    for (const c of candidates) {
      const why = refusal(pod, requests, c, candidates);
      if (why === undefined) {
        const free = c.free ?? new Map<string, number>();
        for (const [k, v] of requests) free.set(k, (free.get(k) ?? 0) - v);
        c.pods.push(pod);
        placements.push({ pod: podKey(pod), node: c.name });
        placed = true;
        break;
      }
      reasons.push(`${c.name}: ${why.detail}`);
      tally.set(why.kind, (tally.get(why.kind) ?? 0) + 1);
    }
    if (!placed) {
      const parts = [...tally].map(([kind, n]) => `${n} ${kind}`);
      unplaced.push({
        pod: podKey(pod),
        reasons,
        summary: `0/${candidates.length} nodes fit${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`,
      });
    }
  }
  return { fits: unplaced.length === 0, placements, unplaced };
}

function withPodSlot(requests: ReadonlyMap<string, number>): Map<string, number> {
  return new Map(requests).set('pods', 1);
}

interface Refusal {
  /** A short category for the summary, e.g. `insufficient nvidia.com/gpu`. */
  readonly kind: string;
  readonly detail: string;
}

function refusal(
  pod: PodLike,
  requests: ReadonlyMap<string, number>,
  c: Candidate,
  all: readonly Candidate[],
): Refusal | undefined {
  if (c.refusal !== undefined || c.free === undefined) {
    const detail = c.refusal ?? 'cannot read its resources';
    return { kind: detail.split(' (')[0] ?? detail, detail };
  }
  const tolerations = pod.spec?.tolerations ?? [];
  for (const taint of c.node.spec?.taints ?? []) {
    if ((taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') && !tolerates(tolerations, taint)) {
      const shown = `${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect}`;
      return { kind: 'untolerated taint', detail: `untolerated taint ${shown}` };
    }
  }
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) {
    if (c.labels[k] !== v)
      return { kind: 'node selector mismatch', detail: `nodeSelector ${k}=${v} does not match` };
  }
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required !== undefined && !nodeAffinityMatches(required.nodeSelectorTerms, c)) {
    return { kind: 'node affinity mismatch', detail: 'required node affinity does not match' };
  }
  for (const [resource, wanted] of requests) {
    if (wanted <= 0) continue;
    const free = c.free.get(resource) ?? 0;
    if (wanted > free) {
      const show = (n: number): string => (resource === 'cpu' ? `${n}m` : String(n));
      return {
        kind: `insufficient ${resource}`,
        detail: `insufficient ${resource} (requested ${show(wanted)}, free ${show(Math.max(free, 0))})`,
      };
    }
  }
  const anti = antiAffinityConflict(pod, c, all);
  if (anti !== undefined) return { kind: 'pod anti-affinity conflict', detail: anti };
  const affinity = affinityUnmet(pod, c, all);
  if (affinity !== undefined) return { kind: 'pod affinity unmet', detail: affinity };
  return undefined;
}

function nodeAffinityMatches(
  terms: readonly {
    readonly matchExpressions?: readonly NodeSelectorRequirementLike[];
    readonly matchFields?: readonly NodeSelectorRequirementLike[];
  }[],
  c: Candidate,
): boolean {
  // Terms are ORed; the requirements within a term are ANDed; a term with no requirement matches nothing.
  return terms.some((term) => {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((e) => requirementMatches(e, c.labels[e.key])) &&
      fields.every((f) => requirementMatches(f, f.key === 'metadata.name' ? c.name : undefined))
    );
  });
}

/** The topology domain of a node for a key; kubelets always label `kubernetes.io/hostname`. */
function domain(c: Candidate, topologyKey: string): string | undefined {
  return c.labels[topologyKey] ?? (topologyKey === 'kubernetes.io/hostname' ? c.name : undefined);
}

function termNamespaces(term: PodAffinityTermLike, owner: PodLike): readonly string[] | 'all' {
  const selector = term.namespaceSelector;
  if (selector !== undefined) return 'all';
  return term.namespaces !== undefined && term.namespaces.length > 0
    ? term.namespaces
    : [owner.metadata?.namespace ?? 'default'];
}

function termMatchesPod(term: PodAffinityTermLike, owner: PodLike, other: PodLike): boolean {
  const namespaces = termNamespaces(term, owner);
  const ns = other.metadata?.namespace ?? 'default';
  if (namespaces !== 'all' && !namespaces.includes(ns)) return false;
  return selectorMatches(term.labelSelector, other.metadata?.labels ?? {});
}

function podsInDomain(all: readonly Candidate[], key: string, value: string): PodLike[] {
  return all.filter((n) => domain(n, key) === value).flatMap((n) => n.pods);
}

function antiAffinityConflict(pod: PodLike, c: Candidate, all: readonly Candidate[]): string | undefined {
  for (const term of pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ??
    []) {
    const value = domain(c, term.topologyKey);
    if (value === undefined) continue;
    const clash = podsInDomain(all, term.topologyKey, value).find((other) =>
      termMatchesPod(term, pod, other),
    );
    if (clash !== undefined) {
      return `required anti-affinity on ${term.topologyKey}: ${podKey(clash)} is already there`;
    }
  }
  // The scheduler also honours the anti-affinity of pods already in the domain against the incoming pod.
  for (const n of all) {
    for (const other of n.pods) {
      const terms =
        other.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      for (const term of terms) {
        const value = domain(c, term.topologyKey);
        if (
          value !== undefined &&
          domain(n, term.topologyKey) === value &&
          termMatchesPod(term, other, pod)
        ) {
          return `${podKey(other)} has required anti-affinity on ${term.topologyKey} against this pod`;
        }
      }
    }
  }
  return undefined;
}

function affinityUnmet(pod: PodLike, c: Candidate, all: readonly Candidate[]): string | undefined {
  for (const term of pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []) {
    const value = domain(c, term.topologyKey);
    if (value === undefined) return `required affinity on ${term.topologyKey}: the node has no such label`;
    const present = podsInDomain(all, term.topologyKey, value).some((other) =>
      termMatchesPod(term, pod, other),
    );
    if (present) continue;
    // As in the scheduler: the first pod of a group that matches its own term may go anywhere.
    const anywhere = all.some((n) => n.pods.some((other) => termMatchesPod(term, pod, other)));
    if (anywhere || !termMatchesPod(term, pod, pod)) {
      return `required affinity on ${term.topologyKey}: no matching pod in this domain`;
    }
  }
  return undefined;
}
