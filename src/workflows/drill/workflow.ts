import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ProbeHandle } from '../../activities/drill/index.js';
import {
  DRILL_ID_PATTERN,
  DrillFailureType,
  drillOwner,
  drillProgressQuery,
  type DrillInput,
  type DrillPhaseRecord,
  type DrillProgress,
  type DrillRestoreResult,
  type DrillResult,
  type DrillStage,
} from '../../contracts/drill.js';
import { CLUSTER_ID, PHASE } from '../../contracts/search-attributes.js';
import { FailureType } from '../../errors.js';
import type { DrillAbort, PreflightFinding } from '../../drill/report.js';
import { DEFAULT_WATCHDOG } from '../../drill/watchdog.js';
import type { RemediationSupportActivities } from '../../activities/remediation-support/index.js';
import {
  gatewayEviction,
  long,
  nodeEviction,
  podDelete,
  short,
  steadyState,
  watchdogActivity,
} from './phases.js';

/**
 * The drill's drain asks the fleet budget for a slot (pause, breaker and limits honoured), and a
 * continuity watchdog aborts the drill; histories recorded before them do neither.
 */
const SAFETY_PATCH = 'drill-budget-watchdog';
const { budgetRelease } = proxyActivities<RemediationSupportActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function inputProblems(input: DrillInput): string[] {
  const problems: string[] = [];
  if (!DRILL_ID_PATTERN.test(input.drillId))
    problems.push(`drillId ${JSON.stringify(input.drillId)} is not a drill ID`);
  if (!NAME.test(input.namespace))
    problems.push(`namespace ${JSON.stringify(input.namespace)} is not a name`);
  if (!NAME.test(input.deployment))
    problems.push(`deployment ${JSON.stringify(input.deployment)} is not a name`);
  if (!input.targetUrl) problems.push('targetUrl is missing');
  if (input.gateway && !NAME.test(input.gateway.deployment))
    problems.push(`gateway.deployment ${JSON.stringify(input.gateway.deployment)} is not a name`);
  if (input.gateway?.namespace !== undefined && !NAME.test(input.gateway.namespace))
    problems.push(`gateway.namespace ${JSON.stringify(input.gateway.namespace)} is not a name`);
  const w = input.watchdog;
  if (w?.abortBelow !== undefined && !(w.abortBelow >= 0 && w.abortBelow <= 1))
    problems.push(`watchdog.abortBelow ${w.abortBelow} is not between 0 and 1`);
  if (
    w?.windowMs !== undefined &&
    !(Number.isInteger(w.windowMs) && w.windowMs >= 1000 && w.windowMs <= 600_000)
  )
    problems.push(`watchdog.windowMs ${w.windowMs} is not 1000..600000`);
  if (w?.minRequests !== undefined && !(Number.isInteger(w.minRequests) && w.minRequests >= 1))
    problems.push(`watchdog.minRequests ${w.minRequests} is not a positive integer`);
  return problems;
}

/** The thresholds given, and with a gateway in pods, its eviction judged too (unless phases are given). */
function judged(input: DrillInput): DrillInput['thresholds'] {
  if (!input.gateway || input.thresholds?.phases) return input.thresholds;
  return { ...input.thresholds, phases: ['pod-delete', 'eviction', 'gateway-eviction'] };
}

/**
 * A resilience drill of one inference Deployment (issue #16): [apply the stand-in Deployment] -> wait
 * Ready -> preflight (refused: report and clean up, nothing injected) -> start the probe process ->
 * steady state -> delete one pod -> cordon and drain one replica's node -> [evict one gateway pod] ->
 * steady state -> restore -> report. Rollback (stop the probe, uncordon the drill's nodes, remove what it created unless `keep`)
 * runs in a non-cancellable scope on success, failure, cancel, and when the drill's own deadline timer
 * fires: an execution timeout or a terminate would run none of it.
 *
 * @param input see {@link DrillInput}; invalid input fails at once with type `InvalidInput`.
 */
export async function drillWorkflow(input: DrillInput): Promise<DrillResult> {
  const problems = inputProblems(input);
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `invalid drill input: ${problems.join('; ')}`,
      FailureType.InvalidInput,
    );
  }
  const startedAt = Date.now();
  const deadlineMs = (input.deadlineSeconds ?? 900) * 1000;
  const tailMs = input.tailMs ?? 10_000;
  const recoverySeconds = input.recoveryTimeoutSeconds ?? 120;
  const rate = input.probe?.rate ?? 20;
  const progress: { -readonly [K in keyof DrillProgress]: DrillProgress[K] } = {
    drillId: input.drillId,
    stage: 'preflight',
    startedAt,
    phases: [],
    refusal: [],
    cordoned: [],
  };
  setHandler(drillProgressQuery, () => ({
    ...progress,
    phases: [...progress.phases],
    cordoned: [...progress.cordoned],
  }));
  upsertSearchAttributes([{ key: CLUSTER_ID, value: input.clusterId }]);
  const stage = (next: DrillStage, details: string) => {
    progress.stage = next;
    upsertSearchAttributes([{ key: PHASE, value: `drill-${next}` }]);
    setCurrentDetails(`**${next}**: ${details}`);
  };
  const phases: DrillPhaseRecord[] = [];
  const record = (p: DrillPhaseRecord) => {
    phases.push(p);
    progress.phases = [...phases];
  };
  let preflight: PreflightFinding[] = [];
  let probe: ProbeHandle | undefined;
  const safety = patched(SAFETY_PATCH);
  let aborted: DrillAbort | undefined;
  const abort = (reason: string) => {
    if (aborted) return;
    aborted = { reason, stage: progress.stage, at: Date.now() };
    progress.aborted = reason;
    setCurrentDetails(`**aborting** during ${aborted.stage}: ${reason}`);
  };
  /** Nodes whose drain slot the drill holds (returned by the rollback). */
  const slots: string[] = [];
  // The body's scope: the deadline cancels it, and so does the watchdog (then `aborted` is set).
  const faults = new CancellationScope({ cancellable: true, timeout: deadlineMs });
  const watchdog = { ...DEFAULT_WATCHDOG, ...input.watchdog };
  const startWatchdog = (file: string): CancellationScope | undefined => {
    if (!safety || watchdog.abortBelow <= 0) return undefined;
    const scope = new CancellationScope();
    scope
      .run(() => watchdogActivity(deadlineMs)({ file, ...watchdog }))
      .then(
        (breach) => {
          abort(`the continuity watchdog fired: ${breach.detail}`);
          faults.cancel();
        },
        (err: unknown) => {
          if (isCancellation(err)) return;
          // Unwatched, the drill would go on blind: stop it.
          abort(`the continuity watchdog failed: ${err instanceof Error ? err.message : String(err)}`);
          faults.cancel();
        },
      );
    return scope;
  };

  const body = async (): Promise<void> => {
    const target = { namespace: input.namespace, deployment: input.deployment };
    if (input.standin) {
      stage('apply', `stand-in Deployment ${input.namespace}/${input.deployment}`);
      await short.applyStandin({ ...target, drillId: input.drillId, ...input.standin });
    }
    await long.waitForReplicas({ ...target, timeoutSeconds: recoverySeconds * 2 });
    stage('preflight', `checking ${input.namespace}/${input.deployment}`);
    preflight = await short.drillPreflight(target);
    progress.refusal = preflight.filter((f) => !f.ok).map((f) => f.detail);
    if (progress.refusal.length > 0) return;
    probe = await long.startProbe({
      drillId: input.drillId,
      targetUrl: input.targetUrl,
      rate,
      streamShare: input.probe?.streamShare ?? 0.5,
      maxSeconds: Math.ceil(deadlineMs / 1000) + 60,
    });
    const watching = startWatchdog(probe.file);
    stage('steady-state', 'probing before any fault');
    record(await steadyState(input.steadyMs ?? 5_000));
    stage('pod-delete', 'one replica deleted, waiting for its replacement');
    record(await podDelete(input, tailMs, recoverySeconds));
    stage('eviction', 'one replica node cordoned and drained');
    const eviction = await nodeEviction(input, tailMs, recoverySeconds, {
      onCordon: (node) => {
        progress.cordoned = [...progress.cordoned, node];
      },
      ...(safety && { budget: { onSlot: (node: string) => slots.push(node) } }),
    });
    if ('refused' in eviction) {
      abort(eviction.refused);
      watching?.cancel();
      return;
    }
    record(eviction);
    if (input.gateway) {
      stage('gateway-eviction', `one pod of gateway ${input.gateway.deployment} evicted`);
      record(await gatewayEviction(input, tailMs, recoverySeconds));
    }
    stage('steady-state', 'probing after the faults');
    record(await steadyState(input.steadyMs ?? 5_000));
    watching?.cancel();
  };

  let restore: DrillRestoreResult | null = null;
  const rollback = (why: DrillStage) =>
    CancellationScope.nonCancellable(async () => {
      stage(why, 'stopping the probe, uncordoning the drill nodes, removing what it created');
      if (probe) await short.stopProbe(probe);
      const restored: DrillRestoreResult = await short.restoreDrill({
        namespace: input.namespace,
        deployment: input.deployment,
        drillId: input.drillId,
        owner: drillOwner(input.drillId),
        cordoned: [...progress.cordoned],
        remove: input.standin !== undefined && input.keep !== true,
        ...(input.gateway && {
          gateway: { namespace: input.gateway.namespace ?? input.namespace, name: input.gateway.deployment },
        }),
      });
      restore = restored;
      progress.cordoned = [];
      // A node a remediation took over keeps the slot: the remediation holds it now (same node).
      for (const node of slots.filter((n) => !restored.leftToOthers.includes(n))) {
        await budgetRelease({ node });
      }
      slots.length = 0;
    });

  let rolledBack = false;
  try {
    await faults.run(body);
  } catch (err) {
    await rollback('rolling-back');
    rolledBack = true;
    // The watchdog's abort cancels the faults: rolled back, then reported like any other end.
    if (!(aborted && isCancellation(err))) {
      if (isCancellation(err) && Date.now() - startedAt >= deadlineMs) {
        throw ApplicationFailure.nonRetryable(
          `the drill's deadline of ${deadlineMs / 1000} s passed during ${progress.stage}; rolled back`,
          DrillFailureType.DeadlineExceeded,
        );
      }
      throw err;
    }
  }
  if (!rolledBack) await rollback(aborted ? 'rolling-back' : 'restore');
  stage('report', 'writing the report');
  const written = await short.writeDrillReport({
    drillId: input.drillId,
    clusterId: input.clusterId,
    namespace: input.namespace,
    deployment: input.deployment,
    startedAt,
    endedAt: Date.now(),
    phases,
    preflight,
    probeFile: probe?.file ?? '',
    rate,
    ...((input.thresholds || input.gateway) && { thresholds: judged(input) }),
    ...(aborted && { aborted }),
  });
  stage('done', written.verdict.pass ? 'passed' : `failed: ${written.verdict.reasons.join('; ')}`);
  return {
    drillId: input.drillId,
    pass: written.verdict.pass,
    reasons: written.verdict.reasons,
    refused: progress.refusal.length > 0,
    phases: written.phases,
    report: written.files,
    restore,
    ...(aborted && { aborted: aborted.reason }),
  };
}
