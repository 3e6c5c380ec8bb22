/**
 * Kubernetes Events fleetmedic records on a Node at each phase change of its remediation, as pure
 * functions (the activity in `activities/observability.ts` only sends them). `kubectl describe node`
 * and `kubectl events --for node/<name>` then tell the story without Temporal.
 */

/** `reportingComponent` (events.k8s.io: `reportingController`) of every Event fleetmedic writes. */
export const REPORTING_CONTROLLER = 'fleetmedic.io/remediation';
/** `source.component` (what `kubectl get events` shows as the source). */
export const SOURCE_COMPONENT = 'fleetmedic';
/** Node Events live in this namespace (the kubelet's and node-problem-detector's convention). */
export const NODE_EVENT_NAMESPACE = 'default';
/** Annotation on each Event: the phase change's sequence number within its workflow run. */
export const EVENT_SEQUENCE_ANNOTATION = 'fleetmedic.io/sequence';

/** What the workflow passes for one phase change. Times come from the workflow (deterministic). */
export interface PhaseChange {
  readonly clusterId: string;
  readonly node: string;
  readonly workflowId: string;
  readonly runId: string;
  /** 1, 2, ... within the run: orders Events recorded in the same millisecond, and names them. */
  readonly sequence: number;
  readonly phase: string;
  readonly previousPhase: string;
  /** ISO-8601: when the new phase began (the previous phase's end). */
  readonly at: string;
  /** ISO-8601: when the previous phase began; with `at`, its duration. */
  readonly previousStartedAt: string;
  readonly class: string | null;
  readonly details?: string;
  /** The outcome, when the phase is `done`. */
  readonly outcome?: string | null;
}

/** Phases an operator should look at: the node waits for a person or stays out of service. */
const WARNING_PHASES = new Set(['awaiting-approval', 'quarantined', 'waiting-for-capacity']);
/** Outcomes that leave the node out of service or untouched although it is faulty. */
const WARNING_OUTCOMES = new Set(['automation-blocked', 'node-gone']);

/** `awaiting-approval` -> `FleetmedicAwaitingApproval`. */
export function phaseReason(phase: string): string {
  const pascal = phase
    .split(/[^a-zA-Z0-9]+/)
    .filter((w) => w !== '')
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
  return `Fleetmedic${pascal}`.slice(0, 128);
}

/** `Warning` for phases and outcomes that need an operator's eye, else `Normal`. */
export function phaseEventType(phase: string, outcome?: string | null): 'Normal' | 'Warning' {
  if (WARNING_PHASES.has(phase)) return 'Warning';
  if (phase === 'done' && outcome && WARNING_OUTCOMES.has(outcome)) return 'Warning';
  return 'Normal';
}

/** Seconds the previous phase lasted, or undefined when the times cannot be read or run backwards. */
export function previousPhaseSeconds(
  change: Pick<PhaseChange, 'at' | 'previousStartedAt'>,
): number | undefined {
  const d = (Date.parse(change.at) - Date.parse(change.previousStartedAt)) / 1000;
  return Number.isFinite(d) && d >= 0 ? d : undefined;
}

/** The Event's `note` (at most 1 kB, the API's limit): phase, class, details, outcome. */
export function phaseNote(change: PhaseChange): string {
  const parts = [
    `${change.previousPhase} -> ${change.phase}`,
    change.class ? `class ${change.class}` : undefined,
    change.outcome ? `outcome ${change.outcome}` : undefined,
    change.details,
    `workflow ${change.workflowId}`,
  ].filter((p): p is string => p !== undefined && p !== '');
  const note = parts.join('; ');
  return Buffer.byteLength(note) <= 1024 ? note : truncateBytes(note, 1021) + '...';
}

function truncateBytes(text: string, max: number): string {
  let out = text.slice(0, max);
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}

/**
 * The Event's name: deterministic per workflow run and sequence, so a retried activity finds its own
 * Event (409) instead of writing a second one. A DNS subdomain of at most 253 characters.
 */
export function phaseEventName(change: Pick<PhaseChange, 'node' | 'runId' | 'sequence'>): string {
  const run =
    change.runId
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 16) || 'run';
  return `${change.node.slice(0, 200)}.fleetmedic-${run}-${change.sequence}`;
}

/**
 * A core/v1 Event about the Node, ready to create. Core/v1 rather than events.k8s.io/v1: only the
 * core API takes both the new-style fields (`eventTime`, `reportingComponent`, `action`) and the
 * `source.component` that `kubectl get events` shows (events.k8s.io/v1 refuses a source on create).
 * Either API lists it afterwards (events.k8s.io shows `note`, `regarding`, `reportingController`).
 */
export function phaseEvent(change: PhaseChange, reportingInstance: string) {
  const at = new Date(change.at);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: phaseEventName(change),
      namespace: NODE_EVENT_NAMESPACE,
      labels: { 'fleetmedic.io/cluster': change.clusterId.slice(0, 63) },
      annotations: {
        [EVENT_SEQUENCE_ANNOTATION]: String(change.sequence),
        'fleetmedic.io/workflow-id': change.workflowId,
      },
    },
    // The kubelet's convention for Node events: uid = node name, which `kubectl describe node` searches.
    involvedObject: { kind: 'Node', apiVersion: 'v1', name: change.node, uid: change.node },
    reason: phaseReason(change.phase),
    message: phaseNote(change),
    type: phaseEventType(change.phase, change.outcome),
    source: { component: SOURCE_COMPONENT },
    reportingComponent: REPORTING_CONTROLLER,
    reportingInstance: reportingInstance.slice(0, 128),
    action: `Phase${phaseReason(change.phase).slice('Fleetmedic'.length)}`.slice(0, 128),
    // MicroTime: the API server wants six fractional digits, a JavaScript Date has three.
    eventTime: microTime(change.at),
    firstTimestamp: at,
    lastTimestamp: at,
    count: 1,
  };
}

/** `2026-11-27T01:02:03.456Z` -> `2026-11-27T01:02:03.456000Z`. */
export function microTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new RangeError(`not a time: ${JSON.stringify(iso)}`);
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
