/**
 * The fleet budget: pure decisions that cap how much of a GPU fleet automation may disrupt at once.
 *
 * Guards, checked in this order by {@link admitDrain}:
 * 1. inputs that cannot be evaluated (no GPU nodes known, NaN, a config out of range) block the drain:
 *    a guard we cannot evaluate must not let a disruptive action through;
 * 2. an operator pause blocks every new drain;
 * 3. the circuit breaker: when more than `breakerThreshold` of the GPU nodes failed within
 *    `breakerWindowMs` (NVSentinel trips at 50% in 5 minutes), something fleet-wide is wrong (a bad
 *    driver rollout, a cooling failure) and draining more nodes would only make it worse; once open it
 *    stays open until an operator resets it;
 * 4. a node that already holds a slot is admitted again (retries and replays must be idempotent);
 * 5. at most `maxConcurrentDrains` nodes drain at once, and a free slot goes to the nodes that
 *    waited longest (the queue: first come, first served);
 * 6. never fewer than `minHealthyFraction` of the GPU nodes healthy, counting the healthy nodes after
 *    this one is taken out (medik8s keeps 51%).
 *
 * An admitted drain also carries the repeat guard's verdict: a node remediated `repeatLimit` times
 * within `repeatWindowMs` goes to replace-hardware instead of looping through resets. The timestamps
 * come from the node's own annotation, because Temporal forgets closed workflows after the namespace
 * retention.
 *
 * All functions are pure and take `now` (milliseconds since the epoch) as an argument.
 */

/** Limits of the fleet budget. */
export interface FleetBudgetConfig {
  /** Most nodes draining at once (an integer, 0 blocks every drain). */
  readonly maxConcurrentDrains: number;
  /** Fraction of GPU nodes that must stay healthy, 0 to 1. */
  readonly minHealthyFraction: number;
  /** The breaker trips when more than this fraction of GPU nodes failed within the window, 0 to 1. */
  readonly breakerThreshold: number;
  /** The breaker's window in milliseconds. */
  readonly breakerWindowMs: number;
  /** Remediations within `repeatWindowMs` after which a node goes to replace-hardware (an integer >= 1). */
  readonly repeatLimit: number;
  /** The repeat guard's window in milliseconds. */
  readonly repeatWindowMs: number;
}

/** Defaults: one drain at a time, 51% healthy, breaker at 50% in 5 minutes, twice in 7 days. */
export const DEFAULT_FLEET_BUDGET: FleetBudgetConfig = Object.freeze({
  maxConcurrentDrains: 1,
  minHealthyFraction: 0.51,
  breakerThreshold: 0.5,
  breakerWindowMs: 5 * 60 * 1000,
  repeatLimit: 2,
  repeatWindowMs: 7 * 24 * 60 * 60 * 1000,
});

/** The circuit breaker: closed (automation runs) or open since `openedAt` (automation stopped). */
export type BreakerState =
  | { readonly state: 'closed' }
  | { readonly state: 'open'; readonly openedAt: number; readonly reason: string };

/** A node failure, as recorded when its alert arrived. */
export interface NodeFailure {
  readonly node: string;
  readonly at: number;
}

/** What the fleet budget knows. */
export interface FleetState {
  readonly config: FleetBudgetConfig;
  /** An operator paused automation. */
  readonly paused: boolean;
  /** How many GPU nodes the cluster has. */
  readonly gpuNodeCount: number;
  /** Names of the GPU nodes that are healthy now (see `isNodeHealthy`). */
  readonly healthyNodes: readonly string[];
  /** Names of the nodes holding a drain slot. */
  readonly draining: readonly string[];
  /**
   * Nodes waiting for a drain slot, in the order they were first refused one: a free slot goes to
   * the first of them (see {@link admitDrain}). Absent in states from before the queue existed.
   */
  readonly queue?: readonly string[];
  /** Recent node failures, for the breaker. */
  readonly failures: readonly NodeFailure[];
  readonly breaker: BreakerState;
}

/** A request for a drain slot. */
export interface DrainRequest {
  readonly node: string;
  /** When this node was remediated before (milliseconds since the epoch), from its annotation. */
  readonly remediationTimestamps?: readonly number[];
}

/** Why a drain was not admitted. */
export type DenialReason =
  'cannot-evaluate' | 'paused' | 'breaker-open' | 'max-concurrent' | 'queued' | 'min-healthy';

/** The verdict of {@link admitDrain}. */
export type Admission =
  | {
      readonly admitted: true;
      /** `replace-hardware` when the repeat guard fired; the remediation must not reset again. */
      readonly escalateTo: 'replace-hardware' | null;
      readonly detail: string;
    }
  | {
      readonly admitted: false;
      readonly reason: DenialReason;
      readonly detail: string;
      /**
       * Nodes before this one in the queue for a slot (`max-concurrent` and `queued` refusals; a node
       * not queued yet counts the whole queue): how long it may wait.
       */
      readonly ahead?: number;
    };

/** A fresh state: nothing draining, no failures, breaker closed, not paused. */
export function initialFleetState(
  gpuNodeCount: number,
  healthyNodes: readonly string[],
  config: FleetBudgetConfig = DEFAULT_FLEET_BUDGET,
): FleetState {
  return {
    config,
    paused: false,
    gpuNodeCount,
    healthyNodes,
    draining: [],
    failures: [],
    breaker: { state: 'closed' },
  };
}

/**
 * Why the config cannot be used, or `undefined` when it can. Names the field, the value and what was
 * expected.
 */
export function validateFleetBudgetConfig(config: FleetBudgetConfig): string | undefined {
  const checks: [keyof FleetBudgetConfig, boolean, string][] = [
    [
      'maxConcurrentDrains',
      Number.isInteger(config.maxConcurrentDrains) && config.maxConcurrentDrains >= 0,
      'an integer >= 0',
    ],
    ['minHealthyFraction', inUnitInterval(config.minHealthyFraction), 'a fraction from 0 to 1'],
    ['breakerThreshold', inUnitInterval(config.breakerThreshold), 'a fraction from 0 to 1'],
    [
      'breakerWindowMs',
      Number.isFinite(config.breakerWindowMs) && config.breakerWindowMs >= 0,
      'milliseconds >= 0',
    ],
    ['repeatLimit', Number.isInteger(config.repeatLimit) && config.repeatLimit >= 1, 'an integer >= 1'],
    [
      'repeatWindowMs',
      Number.isFinite(config.repeatWindowMs) && config.repeatWindowMs >= 0,
      'milliseconds >= 0',
    ],
  ];
  const bad = checks.find(([, ok]) => !ok);
  return bad === undefined ? undefined : `config.${bad[0]} is ${String(config[bad[0]])}, expected ${bad[2]}`;
}

function inUnitInterval(x: number): boolean {
  return Number.isFinite(x) && x >= 0 && x <= 1;
}

/** Why the state cannot be evaluated at `now`, or `undefined` when it can. */
function cannotEvaluate(state: FleetState, now: number): string | undefined {
  if (!Number.isFinite(now)) return `now is ${String(now)}, expected a time in milliseconds`;
  const configProblem = validateFleetBudgetConfig(state.config);
  if (configProblem !== undefined) return configProblem;
  if (!Number.isInteger(state.gpuNodeCount) || state.gpuNodeCount <= 0) {
    return `the number of GPU nodes is ${String(state.gpuNodeCount)}; with no GPU nodes known no guard can be evaluated`;
  }
  const healthy = new Set(state.healthyNodes).size;
  if (healthy > state.gpuNodeCount) {
    return `${healthy} healthy nodes but only ${state.gpuNodeCount} GPU nodes: the inputs disagree`;
  }
  const badFailure = state.failures.find((f) => !Number.isFinite(f.at));
  if (badFailure !== undefined)
    return `the failure of ${badFailure.node} has no valid time (${String(badFailure.at)})`;
  if (state.breaker.state === 'open' && !Number.isFinite(state.breaker.openedAt)) {
    return 'the breaker is open with no valid time';
  }
  return undefined;
}

/**
 * The breaker's state at `now`: an open breaker stays open; a closed one opens when more than
 * `breakerThreshold` of the GPU nodes (distinct nodes) failed within `breakerWindowMs` before `now`.
 * Failures stamped after `now` (clock skew) count as recent.
 */
export function evaluateBreaker(state: FleetState, now: number): BreakerState {
  if (state.breaker.state === 'open') return state.breaker;
  const since = now - state.config.breakerWindowMs;
  const recent = new Set(state.failures.filter((f) => f.at > since).map((f) => f.node));
  const fraction = state.gpuNodeCount > 0 ? recent.size / state.gpuNodeCount : Number.POSITIVE_INFINITY;
  if (fraction > state.config.breakerThreshold) {
    return {
      state: 'open',
      openedAt: now,
      reason:
        `${recent.size} of ${state.gpuNodeCount} GPU nodes failed within ${formatDuration(state.config.breakerWindowMs)} ` +
        `(more than ${formatPercent(state.config.breakerThreshold)})`,
    };
  }
  return state.breaker;
}

/**
 * Records a node failure at `at`, drops failures older than the breaker window, and re-evaluates the
 * breaker (which may open).
 */
export function recordFailure(state: FleetState, node: string, at: number): FleetState {
  const since = at - state.config.breakerWindowMs;
  const failures = [...state.failures.filter((f) => f.at > since), { node, at }];
  const next = { ...state, failures };
  return { ...next, breaker: Number.isFinite(at) ? evaluateBreaker(next, at) : next.breaker };
}

/** Closes the breaker and forgets the failures that tripped it: an operator has looked at the fleet. */
export function resetBreaker(state: FleetState): FleetState {
  return { ...state, breaker: { state: 'closed' }, failures: [] };
}

/**
 * Gives `node` a drain slot (idempotent) and takes it out of the queue. Call only after
 * {@link admitDrain} admitted it.
 */
export function acquireSlot(state: FleetState, node: string): FleetState {
  const queued = dequeue(state, node);
  return queued.draining.includes(node) ? queued : { ...queued, draining: [...queued.draining, node] };
}

/** Refusals after which a node waits in the queue for a slot (after the others it waits for an operator). */
export const QUEUEING_REFUSALS: ReadonlySet<DenialReason> = new Set<DenialReason>([
  'max-concurrent',
  'queued',
  'min-healthy',
]);

/**
 * Refusals that depend on the budget's own state alone (a pause, the breaker, the slots and the queue),
 * not on which nodes are healthy now: the budget answers them without a fresh fleet view.
 */
export const FLEET_INDEPENDENT_REFUSALS: ReadonlySet<DenialReason> = new Set<DenialReason>([
  'paused',
  'breaker-open',
  'max-concurrent',
  'queued',
]);

/** The fleet as a worker listed it just before asking: how many GPU nodes, which of them healthy. */
export interface FleetView {
  readonly gpuNodeCount: number;
  readonly healthyNodes: readonly string[];
}

/** One request for a drain slot in a batch (see {@link decideDrainSlots}). */
export interface SlotRequest extends DrainRequest {
  /**
   * False: a refused request does not join the queue for a slot (a drill asks once and gives up; it
   * never waits ahead of a remediation). Absent: it does.
   */
  readonly queue?: boolean;
}

/** Requests for drain slots, decided together by the budget (see {@link decideDrainSlots}). */
export interface SlotBatch {
  readonly requests: readonly SlotRequest[];
  /**
   * Holders (and nodes first in the queue) whose remediation or drill has closed, as the asking
   * worker found them: their slots and places are taken back first.
   */
  readonly staleHolders?: readonly string[];
  /** The fleet listed just before; absent, only what needs no fleet view is answered. */
  readonly fleet?: FleetView;
}

/** The budget's answer to one request of a {@link SlotBatch}. */
export type SlotAnswer =
  | { readonly admission: Admission }
  /** The request passed every check of the budget's own state: ask again with a fresh fleet view. */
  | { readonly needsFleetView: true };

/**
 * The budget's decision on a batch of requests for drain slots, the one place where drains are
 * admitted. The requests are decided in order, each seeing the slots and queue places the ones
 * before it took; the slots of `staleHolders` are taken back first.
 *
 * With `fleet`, every request is decided by {@link admitDrain} on that view. Without it, a request
 * the budget refuses for a reason in {@link FLEET_INDEPENDENT_REFUSALS} is answered (that refusal
 * needs no list of every node), and every other gets `needsFleetView`, changing nothing: the worker
 * lists the fleet and asks again, and the budget decides again on its state as it is then.
 *
 * A refused request joins the queue when `queueing` (the budget's patch), its reason is in
 * {@link QUEUEING_REFUSALS} and it did not say `queue: false`. `wake`: the queue's first nodes may
 * have a slot free for them now (a slot was taken back, or a refusal changed the queue).
 */
export function decideDrainSlots(
  state: FleetState,
  batch: SlotBatch,
  now: number,
  queueing: boolean,
): { state: FleetState; answers: SlotAnswer[]; wake: boolean } {
  const before = state.draining.length;
  let next = state;
  for (const stale of batch.staleHolders ?? []) next = dequeue(releaseSlot(next, stale), stale);
  if (batch.fleet !== undefined) {
    next = { ...next, gpuNodeCount: batch.fleet.gpuNodeCount, healthyNodes: [...batch.fleet.healthyNodes] };
  }
  let refused = false;
  const answers = batch.requests.map((request): SlotAnswer => {
    const drain = { node: request.node, remediationTimestamps: request.remediationTimestamps ?? [] };
    const admission = admitDrain(next, drain, now);
    if (
      batch.fleet === undefined &&
      (admission.admitted || !FLEET_INDEPENDENT_REFUSALS.has(admission.reason))
    ) {
      return { needsFleetView: true };
    }
    if (admission.admitted) next = acquireSlot(next, request.node);
    else {
      refused = true;
      if (queueing && request.queue !== false && QUEUEING_REFUSALS.has(admission.reason)) {
        next = enqueue(next, request.node);
      }
    }
    return { admission };
  });
  return { state: next, answers, wake: next.draining.length < before || refused };
}

/** Puts `node` at the end of the queue for a drain slot, unless it is queued or holds a slot already. */
export function enqueue(state: FleetState, node: string): FleetState {
  const queue = state.queue ?? [];
  if (node === '' || queue.includes(node) || state.draining.includes(node)) return state;
  return { ...state, queue: [...queue, node] };
}

/** Takes `node` out of the queue for a drain slot (idempotent). */
export function dequeue(state: FleetState, node: string): FleetState {
  const queue = state.queue ?? [];
  return queue.includes(node) ? { ...state, queue: queue.filter((n) => n !== node) } : state;
}

/**
 * The queued nodes a free slot is waiting for: the first `maxConcurrentDrains - draining` of the
 * queue. The budget tells them (their remediations wait for a signal) when a slot frees.
 */
export function nextInQueue(state: FleetState): string[] {
  const free = state.config.maxConcurrentDrains - new Set(state.draining).size;
  return free > 0 ? (state.queue ?? []).slice(0, free) : [];
}

/** Returns `node`'s drain slot (idempotent). */
export function releaseSlot(state: FleetState, node: string): FleetState {
  return state.draining.includes(node)
    ? { ...state, draining: state.draining.filter((n) => n !== node) }
    : state;
}

/** The verdict of {@link allowsAutomaticQuarantine}; `reason` says why automation was refused. */
export interface QuarantineVerdict {
  readonly allowed: boolean;
  readonly detail: string;
  readonly reason?: Extract<DenialReason, 'cannot-evaluate' | 'paused' | 'breaker-open'>;
  /**
   * Distinct nodes whose failure was recorded within {@link BURST_WINDOW_MS} before the verdict, the
   * reported node included (see {@link recentFailureCount}); set by the fleet budget's failure
   * reports, absent in verdicts recorded before it existed.
   */
  readonly recentFailures?: number;
}

/** The window of {@link recentFailureCount}: failures this close together are one burst (a storm). */
export const BURST_WINDOW_MS = 60_000;

/**
 * Distinct nodes whose failure was recorded within `windowMs` before `now` (failures stamped after
 * `now`, clock skew, count). Only failures the breaker still keeps are seen, so a window longer
 * than `breakerWindowMs` counts no further back than that.
 */
export function recentFailureCount(state: FleetState, now: number, windowMs = BURST_WINDOW_MS): number {
  const since = now - windowMs;
  return new Set(state.failures.filter((f) => f.at > since).map((f) => f.node)).size;
}

/**
 * Whether automation may quarantine a node at all right now: not while paused or while the breaker
 * is open, and not when the state cannot be evaluated.
 */
export function allowsAutomaticQuarantine(state: FleetState, now: number): QuarantineVerdict {
  const problem = cannotEvaluate(state, now);
  if (problem !== undefined)
    return {
      allowed: false,
      reason: 'cannot-evaluate',
      detail: `cannot evaluate the fleet budget: ${problem}`,
    };
  if (state.paused)
    return { allowed: false, reason: 'paused', detail: 'automation is paused by an operator' };
  const breaker = evaluateBreaker(state, now);
  if (breaker.state === 'open')
    return { allowed: false, reason: 'breaker-open', detail: `circuit breaker open: ${breaker.reason}` };
  return { allowed: true, detail: 'automation is running' };
}

/** The repeat guard's verdict for one node. */
export interface RepeatVerdict {
  /** True when the node reached `repeatLimit` remediations within the window. */
  readonly repeated: boolean;
  /** Remediations counted within the window (unreadable timestamps count). */
  readonly count: number;
  readonly detail: string;
}

/**
 * Counts a node's remediations within `repeatWindowMs` before `now`. A timestamp that is not a finite
 * number counts as recent: a damaged annotation must not reopen the reset loop the guard exists to stop.
 */
export function repeatGuard(
  timestamps: readonly number[],
  now: number,
  config: FleetBudgetConfig,
): RepeatVerdict {
  const since = now - config.repeatWindowMs;
  const unreadable = timestamps.filter((t) => !Number.isFinite(t)).length;
  const count = timestamps.filter((t) => !Number.isFinite(t) || t > since).length;
  const repeated = count >= config.repeatLimit;
  const window = formatDuration(config.repeatWindowMs);
  const note = unreadable > 0 ? ` (${unreadable} unreadable timestamp(s) counted)` : '';
  return {
    repeated,
    count,
    detail: repeated
      ? `remediated ${count} time(s) within ${window} (limit ${config.repeatLimit})${note}: replace the hardware instead of looping`
      : `remediated ${count} time(s) within ${window} (limit ${config.repeatLimit})${note}`,
  };
}

/**
 * Decides whether the fleet budget admits draining `request.node` at `now`. See the module
 * documentation for the guards and their order.
 *
 * @param state - what the budget knows (usually the fleet-budget workflow's state)
 * @param request - the node and its earlier remediation times
 * @param now - the current time in milliseconds since the epoch
 * @example admitDrain(state, { node: 'gpu-7' }, Date.now())
 *   // { admitted: false, reason: 'max-concurrent', detail: '1 of 1 drain slot(s) in use (gpu-3)' }
 */
export function admitDrain(state: FleetState, request: DrainRequest, now: number): Admission {
  const problem = request.node === '' ? 'the request names no node' : cannotEvaluate(state, now);
  if (problem !== undefined) {
    return {
      admitted: false,
      reason: 'cannot-evaluate',
      detail: `cannot evaluate the fleet budget: ${problem}`,
    };
  }
  const { config } = state;
  if (state.paused)
    return { admitted: false, reason: 'paused', detail: 'automation is paused by an operator' };

  const breaker = evaluateBreaker(state, now);
  if (breaker.state === 'open') {
    return {
      admitted: false,
      reason: 'breaker-open',
      detail: `circuit breaker open since ${new Date(breaker.openedAt).toISOString()}: ${breaker.reason}; an operator must reset it`,
    };
  }

  const repeat = repeatGuard(request.remediationTimestamps ?? [], now, config);
  const admit = (detail: string): Admission => ({
    admitted: true,
    escalateTo: repeat.repeated ? 'replace-hardware' : null,
    detail: `${detail}; ${repeat.detail}`,
  });

  if (state.draining.includes(request.node)) return admit(`${request.node} already holds a drain slot`);

  const others = [...new Set(state.draining)].filter((n) => n !== request.node);
  // First come, first served: the nodes queued before this one (all of the queue for a node not in
  // it yet) have the first claim on a free slot.
  const queue = (state.queue ?? []).filter((n) => !state.draining.includes(n));
  const position = queue.indexOf(request.node);
  const ahead = position >= 0 ? position : queue.length;
  if (others.length >= config.maxConcurrentDrains) {
    return {
      admitted: false,
      reason: 'max-concurrent',
      detail: `${others.length} of ${config.maxConcurrentDrains} drain slot(s) in use${others.length > 0 ? ` (${others.join(', ')})` : ''}`,
      ahead,
    };
  }
  const free = config.maxConcurrentDrains - others.length;
  if (ahead >= free) {
    const first = queue.slice(0, Math.min(ahead, 3));
    return {
      admitted: false,
      reason: 'queued',
      detail:
        `${ahead} node(s) ahead in the queue for ${free} free drain slot(s) ` +
        `(${first.join(', ')}${ahead > first.length ? ', ...' : ''})`,
      ahead,
    };
  }

  const healthyAfter = new Set(state.healthyNodes);
  healthyAfter.delete(request.node);
  const fraction = healthyAfter.size / state.gpuNodeCount;
  // The epsilon keeps 51/100 >= 0.51 true despite binary floating point.
  if (fraction + 1e-12 < config.minHealthyFraction) {
    return {
      admitted: false,
      reason: 'min-healthy',
      detail:
        `draining ${request.node} would leave ${healthyAfter.size} of ${state.gpuNodeCount} GPU nodes healthy ` +
        `(${formatPercent(fraction)}), below the minimum ${formatPercent(config.minHealthyFraction)}`,
    };
  }

  return admit(
    `${others.length + 1} of ${config.maxConcurrentDrains} drain slot(s) in use; ` +
      `${healthyAfter.size} of ${state.gpuNodeCount} GPU nodes stay healthy`,
  );
}

function formatPercent(fraction: number): string {
  return `${Math.round(fraction * 1000) / 10}%`;
}

function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
