/**
 * The fleet budget's client side: failure reports to its breaker and requests for drain slots, sent
 * as updates through the Temporal client so that the caller learns at once what the budget decided,
 * with the fleet view (GPU nodes, healthy ones) read from the cluster that the budget needs.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import {
  acquireDrainSlots,
  FLEET_BUDGET_WORKFLOW,
  fleetBudgetState,
  fleetBudgetWorkflowId,
  releaseDrainSlot,
  reportNodeFailures,
  type FleetBudgetInput,
} from '../../contracts/fleet-budget.js';
import { remediationWorkflowId } from '../../contracts/ids.js';
import {
  type Admission,
  type FleetBudgetConfig,
  type FleetState,
  type QuarantineVerdict,
  type SlotAnswer,
  type SlotRequest,
} from '../../domain/fleet-budget.js';
import { isNodeHealthy } from '../../domain/node-health.js';
import { isApiError } from '../../k8s/api-errors.js';
import { GPU_RESOURCE } from '../../k8s/labels.js';
import { drillCordons } from '../../drill/reaper.js';
import { objectName, validateInput } from '../input.js';
import { coalesce } from './coalesce.js';

/**
 * The breaker's fleet view: read again (in the background) once older than this, used as it is up to
 * `BREAKER_VIEW_MAX_STALE_MS` (see `breakerView`).
 */
const BREAKER_VIEW_REFRESH_MS = 30_000;
const BREAKER_VIEW_MAX_STALE_MS = 10 * 60_000;
/** Most failures one `reportNodeFailures` update carries. */
const MAX_FAILURE_BATCH = 500;
/** `reportNodeFailures` updates of one worker in flight at once (the server allows 10 per workflow). */
const MAX_FAILURE_UPDATES_IN_FLIGHT = 3;
/** Most requests for a drain slot one `acquireDrainSlots` update carries. */
const MAX_SLOT_BATCH = 500;

interface FleetView {
  readonly gpuNodeCount: number;
  readonly healthyNodes: string[];
  /** Names of all GPU nodes in the view (not sent to the budget). */
  readonly gpuNodes: ReadonlySet<string>;
}

const nodeSchema = z.object({ node: objectName });
// No bound on the count: the history comes from a node annotation, and refusing a long one would
// keep the node from ever getting a drain slot.
const budgetAcquireSchema = z.object({
  node: objectName,
  remediationTimestamps: z.array(z.number().int('must be milliseconds since the epoch')),
  queue: z.boolean().optional(),
});

/** What the fleet budget's client needs (see `RemediationSupportDeps`). */
export interface FleetBudgetClientDeps {
  readonly client: Client;
  readonly clusterId: string;
  readonly taskQueue: string;
  /** Limits of the fleet budget when this worker starts it (an existing budget keeps its own). */
  readonly budgetConfig?: Partial<FleetBudgetConfig>;
}

/**
 * The fleet budget activities of one cluster: `budgetReportFailure`, `budgetAcquire`,
 * `budgetRelease`. `core` lists the fleet's nodes.
 */
export function createFleetBudgetClient(deps: FleetBudgetClientDeps, core: CoreV1Api) {
  async function readFleetView(): Promise<FleetView> {
    const nodes = (await core.listNode()).items.filter(
      (n) => Number(n.status?.capacity?.[GPU_RESOURCE] ?? 0) > 0,
    );
    return {
      gpuNodeCount: nodes.length,
      healthyNodes: nodes.filter((n) => isNodeHealthy(n).healthy).map((n) => n.metadata?.name ?? ''),
      gpuNodes: new Set(nodes.map((n) => n.metadata?.name ?? '')),
    };
  }

  /**
   * The GPU nodes and which of them are healthy: a read started at most `maxAgeMs` ago (in flight
   * or done) is shared, so `fleetView(0)` joins only a read started in the same millisecond. A failed
   * read is not reused.
   */
  let shared: { startedAt: number; view: Promise<FleetView> } | undefined;
  function fleetView(maxAgeMs: number): Promise<FleetView> {
    const now = Date.now();
    if (shared !== undefined && now - shared.startedAt <= maxAgeMs) return shared.view;
    const entry = { startedAt: now, view: readFleetView() };
    shared = entry;
    entry.view.then(
      (view) => {
        if (latest === undefined || entry.startedAt >= latest.at) latest = { at: entry.startedAt, view };
      },
      () => {
        if (shared === entry) shared = undefined;
      },
    );
    return entry.view;
  }
  /** The newest view read successfully, with when its read started. */
  let latest: { at: number; view: FleetView } | undefined;

  /**
   * The fleet view of the breaker's failure reports. A storm of reports must not wait for a list of
   * every node (0.5-2 s for 1,500 nodes under load, on the control worker's one thread, with every
   * report queued behind it), so the last view is used while it is younger than 10 minutes, and read
   * again in the background once older than 30 s. Only a worker with no view yet waits for a read.
   *
   * Why a view that old is safe for the breaker: it counts distinct failed nodes (from the reports
   * themselves, not from the view) against `gpuNodeCount`, which changes only when nodes join or leave
   * the cluster. A report for a node the view lacks waits for a fresh read (see `reportFailure`), so
   * a joined node is never a failure outside the count; nodes deleted since the view still count,
   * which makes the breaker that much less sensitive until the next read. The healthy names only feed
   * the check that the inputs agree. The min-healthy guard of a drain does depend on which nodes are
   * healthy, so `budgetAcquire` reads a fresh view.
   */
  function breakerView(): Promise<FleetView> {
    const now = Date.now();
    if (latest === undefined || now - latest.at > BREAKER_VIEW_MAX_STALE_MS) return fleetView(0);
    if (now - latest.at > BREAKER_VIEW_REFRESH_MS) fleetView(BREAKER_VIEW_REFRESH_MS).catch(() => {});
    return Promise.resolve(latest.view);
  }

  /**
   * Starts the cluster's budget workflow (an existing one is reused) once per activities instance.
   * The budget can still close later (terminated by an operator or a test): `withBudget` starts it
   * again when an update finds it gone.
   */
  let started: Promise<void> | undefined;
  function ensureBudget(): Promise<void> {
    started ??= deps.client.workflow
      .start<(input: FleetBudgetInput) => Promise<void>>(FLEET_BUDGET_WORKFLOW, {
        workflowId: fleetBudgetWorkflowId(deps.clusterId),
        taskQueue: deps.taskQueue,
        args: [{ clusterId: deps.clusterId, config: deps.budgetConfig }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `fleet budget of cluster ${deps.clusterId}`,
      })
      .then(
        () => undefined,
        (err: unknown) => {
          if (err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError') return;
          started = undefined;
          throw err;
        },
      );
    return started;
  }

  /**
   * Runs `call` on the budget's handle; when it fails because the budget workflow is gone (an update
   * answers not found; a query of a closed run fails), starts the budget again and retries once.
   */
  async function withBudget<R>(call: (handle: WorkflowHandle) => Promise<R>): Promise<R> {
    await ensureBudget();
    const handle = deps.client.workflow.getHandle(fleetBudgetWorkflowId(deps.clusterId));
    try {
      return await call(handle);
    } catch (err) {
      const gone =
        err instanceof WorkflowNotFoundError ||
        (await handle.describe().then(
          (d) => d.status.name !== 'RUNNING',
          (e: unknown) => e instanceof WorkflowNotFoundError,
        ));
      if (!gone) throw err;
      started = undefined;
      await ensureBudget();
      return call(handle);
    }
  }

  /** True while the workflow `workflowId` runs; false when it closed or never existed. */
  async function runOpen(workflowId: string): Promise<boolean> {
    try {
      return (await deps.client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * True while the run holding `node`'s slot is open: the node's remediation, else the drill whose
   * cordon the node carries (a drill holds a slot for the node it drains, owner `drill/<id>` in the
   * ownership record). The node is read only when its remediation is not running.
   */
  async function holderOpen(node: string): Promise<boolean> {
    if (await runOpen(remediationWorkflowId(deps.clusterId, node))) return true;
    const read = await core.readNode({ name: node }).catch((err: unknown) => {
      if (isApiError(err, 404)) return undefined;
      throw err;
    });
    // The drill's cordon, read as the drill reaper reads it.
    const drill = read ? drillCordons([read], deps.clusterId)[0] : undefined;
    return drill !== undefined && runOpen(drill.workflowId);
  }

  /**
   * Holders of a drain slot, and nodes first in the queue for one, whose remediation (or drill) has
   * closed or is gone: their slots are stale. The first of the queue counts because a free slot
   * waits for them, and one whose remediation ended would keep everyone behind it waiting.
   */
  async function closedHolders(state: FleetState): Promise<string[]> {
    const queued = (state.queue ?? []).slice(0, state.config.maxConcurrentDrains);
    const closed: string[] = [];
    for (const holder of new Set([...state.draining, ...queued])) {
      if (!(await holderOpen(holder))) closed.push(holder);
    }
    return closed;
  }

  /**
   * Requests for a drain slot, coalesced: one batch at a time, the requests that arrive meanwhile go
   * together in the next (see `coalesce`). The budget decides each one (`decideDrainSlots`); this
   * side only brings it what it cannot read itself: which holders' runs have closed, and the fleet.
   *
   * A batch first goes without a fleet view: refusals that need none (paused, breaker open, every
   * slot taken or promised to the queue) are answered without listing every node. The requests that
   * passed those checks go again with a fresh list of the nodes, read once for all of them. After a
   * storm, 150 remediations ask within seconds; 150 lists of 1,500 nodes at once starved the API
   * server (lists cut off by the request timeout, retried, again), and one list per request in turn
   * made the last wait for all the others'.
   */
  const askForSlots = coalesce<SlotRequest, Admission>(
    (requests) =>
      withBudget(async (handle) => {
        const state = await handle.query(fleetBudgetState);
        const asking = new Set(requests.map((r) => r.node));
        const staleHolders = (await closedHolders(state)).filter((h) => !asking.has(h));
        const answers: SlotAnswer[] = await handle.executeUpdate(acquireDrainSlots, {
          args: [{ requests, ...(staleHolders.length > 0 && { staleHolders }) }],
        });
        const pending = answers.flatMap((a, i) => ('needsFleetView' in a ? [i] : []));
        if (pending.length > 0) {
          const { gpuNodeCount, healthyNodes } = await fleetView(0);
          const decided: SlotAnswer[] = await handle.executeUpdate(acquireDrainSlots, {
            args: [{ requests: pending.map((i) => requests[i]!), fleet: { gpuNodeCount, healthyNodes } }],
          });
          pending.forEach((i, k) => {
            answers[i] = decided[k]!;
          });
        }
        return answers.map((a, i) => {
          if ('admission' in a) return a.admission;
          throw new Error(
            `the fleet budget did not decide the drain slot of ${requests[i]!.node} with a fleet view`,
          );
        });
      }),
    MAX_SLOT_BATCH,
  );

  /**
   * Failure reports of concurrent remediations, coalesced into one update per batch, a few batches
   * in flight at once (see `coalesce`); the budget workflow applies them one after another.
   */
  const reportFailure = coalesce<string, QuarantineVerdict>(
    async (nodes) => {
      let view = await breakerView();
      // A node that joined after the shared view was read would count as a failure but not as a GPU
      // node (a breaker tripped by "5 of 4 nodes failed"): read afresh when a reported node is missing.
      if (nodes.some((n) => !view.gpuNodes.has(n))) view = await fleetView(0);
      const { gpuNodeCount, healthyNodes } = view;
      return withBudget((handle) =>
        handle.executeUpdate(reportNodeFailures, { args: [{ nodes, gpuNodeCount, healthyNodes }] }),
      );
    },
    MAX_FAILURE_BATCH,
    MAX_FAILURE_UPDATES_IN_FLIGHT,
  );

  return {
    /** Records a failure with the fleet's circuit breaker; says whether automatic quarantine may go on. */
    async budgetReportFailure(input: { node: string }): Promise<QuarantineVerdict> {
      const { node } = validateInput('budgetReportFailure', nodeSchema, input);
      return reportFailure(node);
    },

    /**
     * Asks the fleet budget for a drain slot (see `askForSlots`). Slots held by remediations (or
     * drills, see `holderOpen`) whose workflow has closed (terminated, timed out) are taken back
     * first, so a slot can never leak. With `queue: false` a refused request does not join the
     * queue (a drill).
     *
     * @throws non-retryable `InvalidInput` naming the field (`node`, `remediationTimestamps[i]`).
     */
    async budgetAcquire(input: {
      node: string;
      remediationTimestamps: number[];
      queue?: boolean;
    }): Promise<Admission> {
      const request = validateInput('budgetAcquire', budgetAcquireSchema, input);
      return askForSlots({
        node: request.node,
        remediationTimestamps: request.remediationTimestamps,
        ...(request.queue === false && { queue: false }),
      });
    },

    /**
     * Gives `node`'s drain slot back to the fleet budget.
     *
     * @throws non-retryable `InvalidInput` naming the field when `node` is not a node name.
     */
    async budgetRelease(input: { node: string }): Promise<void> {
      const { node } = validateInput('budgetRelease', nodeSchema, input);
      await withBudget((handle) => handle.executeUpdate(releaseDrainSlot, { args: [{ node }] }));
    },
  };
}
