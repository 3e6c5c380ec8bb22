import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DRILL_WORKFLOW,
  DrillFailureType,
  type DrillInput,
  type DrillResult,
} from '../../src/contracts/drill.js';
import type { WriteDrillReportInput } from '../../src/activities/drill/index.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { createTemporalTestEnv, installQuietRuntime } from '../helpers/temporal.js';

// drillWorkflow on a Temporal dev server with fake activities: the order of its steps, the preflight
// refusal, and the rollback when a phase fails (probe stopped, the drill's cordon and objects undone,
// no report claimed).
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

interface Fakes {
  calls: string[];
  restore: unknown[];
  report: WriteDrillReportInput[];
  acquire: unknown[];
  drains: unknown[];
}

interface FakeOptions {
  refuse?: boolean;
  failRecovery?: boolean;
  /** The budget's refusal of the drain (reason), when it refuses. */
  budgetRefuses?: 'paused' | 'breaker-open';
  /** The watchdog fires once the pod deletion has started. */
  breach?: boolean;
  /** DrillInput.drainNode. */
  drainNode?: boolean;
  /** The watchdog's first attempts fail (its worker died), and the pod deletion lasts until after them. */
  watchdogDies?: number;
}

function fakeActivities(f: Fakes, options: FakeOptions = {}) {
  const call = (name: string) => f.calls.push(name);
  let podDeleted = false;
  let watchdogCalls = 0;
  const steps = (t: number) => [
    { step: 'replacement-created' as const, at: t + 10 },
    { step: 'ready' as const, at: t + 20 },
    { step: 'all-ready' as const, at: t + 20 },
  ];
  return {
    applyStandin: () => (call('applyStandin'), Promise.resolve({ created: [] })),
    waitForReplicas: () => (call('waitForReplicas'), Promise.resolve({ readyAt: Date.now(), pods: [] })),
    drillPreflight: () => {
      call('drillPreflight');
      return Promise.resolve(
        options.refuse
          ? [{ check: 'pdb', ok: false, detail: 'no PDB' }]
          : [{ check: 'pdb', ok: true, detail: 'PDB llama' }],
      );
    },
    startProbe: () => (call('startProbe'), Promise.resolve({ pid: 1, file: '/tmp/probe.jsonl' })),
    deletePodAndMeasure: async (input: { evict?: boolean }) => {
      call(input.evict ? 'evictPodAndMeasure' : 'deletePodAndMeasure');
      podDeleted = true;
      // Long enough for a watchdog that fires now to cancel it.
      if (options.breach) await new Promise((r) => setTimeout(r, 3_000));
      // Until the watchdog's retries are over (bounded: 60 s).
      for (let i = 0; options.watchdogDies && watchdogCalls <= options.watchdogDies && i < 600; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const t = Date.now();
      return Promise.resolve({ injectedAt: t, victim: 'llama-a', steps: steps(t), victimGoneAt: t + 20 });
    },
    cordonReplicaNode: () => {
      call('cordonReplicaNode');
      return Promise.resolve({
        node: 'gpu-node-2',
        selector: 'app=llama',
        victim: { name: 'llama-b', uid: 'u-b' },
        before: [],
      });
    },
    measureRecovery: () => {
      call('measureRecovery');
      if (options.failRecovery) {
        return Promise.reject(
          ApplicationFailure.nonRetryable('no replacement-created', DrillFailureType.RecoveryTimeout),
        );
      }
      const t = Date.now();
      return Promise.resolve({ steps: steps(t), victimGoneAt: t + 20 });
    },
    drainNode: (input: unknown) => {
      call('drainNode');
      f.drains.push(input);
      return Promise.resolve({ nodeGone: false, evicted: 1 });
    },
    budgetAcquire: (input: unknown) => {
      call('budgetAcquire');
      f.acquire.push(input);
      return Promise.resolve(
        options.budgetRefuses
          ? { admitted: false, reason: options.budgetRefuses, detail: 'automation is paused by an operator' }
          : { admitted: true, escalateTo: null, detail: '1 of 1 drain slot(s) free' },
      );
    },
    budgetRelease: () => (call('budgetRelease'), Promise.resolve()),
    /** Runs until cancelled (heartbeating, so the cancel arrives), or fires once a pod was deleted. */
    watchContinuity: async () => {
      call('watchContinuity');
      if (++watchdogCalls <= (options.watchdogDies ?? 0)) {
        throw ApplicationFailure.retryable('the worker running the watchdog died', 'WorkerDied');
      }
      const ctx = Context.current();
      for (;;) {
        if (options.breach && podDeleted) {
          return {
            continuity: 0.1,
            requests: 100,
            failed: 90,
            degraded: 0,
            window: { from: 0, to: 1 },
            detail:
              'continuity 0.10 < 0.5 over the last 10 s (10 of 100 requests successful, 90 failed, 0 degraded)',
          };
        }
        ctx.heartbeat();
        await ctx.sleep(50);
      }
    },
    stopProbe: () => (call('stopProbe'), Promise.resolve({ stopped: true })),
    restoreDrill: (input: unknown) => {
      call('restoreDrill');
      f.restore.push(input);
      return Promise.resolve({ uncordoned: ['gpu-node-2'], leftToOthers: [], deleted: [] });
    },
    writeDrillReport: (input: WriteDrillReportInput) => {
      call('writeDrillReport');
      f.report.push(input);
      const reasons = [
        ...(input.aborted ? [`aborted during ${input.aborted.stage}: ${input.aborted.reason}`] : []),
        ...input.preflight.filter((p) => !p.ok).map((p) => p.detail),
      ];
      return Promise.resolve({
        verdict: { pass: reasons.length === 0, reasons },
        phases: [],
        files: { json: '/r/x.json', markdown: '/r/x.md', html: '/r/x.html' },
      });
    },
  };
}

describe('drillWorkflow (Temporal dev server, fake activities)', { timeout: 180_000 }, () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;

  before(async () => {
    installQuietRuntime();
    [env, bundle] = await Promise.all([
      createTemporalTestEnv(),
      bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
    ]);
  });
  after(() => env?.teardown());

  async function run(name: string, options: FakeOptions) {
    const fakes: Fakes = { calls: [], restore: [], report: [], acquire: [], drains: [] };
    const taskQueue = `drill-${name}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: fakeActivities(fakes, options),
    });
    const input: DrillInput = {
      clusterId: 'c1',
      drillId: name,
      namespace: 'default',
      deployment: 'llama',
      standin: { replicas: 3 },
      targetUrl: 'http://127.0.0.1:8090',
      steadyMs: 50,
      tailMs: 0,
      ...(options.drainNode !== undefined && { drainNode: options.drainNode }),
    };
    const outcome = await worker.runUntil(
      env.client.workflow
        .execute(DRILL_WORKFLOW, { workflowId: `drill/c1/${name}`, taskQueue, args: [input] })
        .then((r): { result?: DrillResult; error?: unknown } => ({ result: r as DrillResult }))
        .catch((error: unknown): { result?: DrillResult; error?: unknown } => ({ error })),
    );
    return { fakes, ...outcome };
  }

  it('runs apply, preflight, probe, steady state, pod deletion, eviction, steady state, restore, report', async () => {
    const { fakes, result } = await run('pass', {});
    assert.deepEqual(fakes.calls.slice(0, 6), [
      'applyStandin',
      'waitForReplicas',
      'drillPreflight',
      'startProbe',
      'watchContinuity',
      'deletePodAndMeasure',
    ]);
    assert.deepEqual(fakes.calls.slice(-4), [
      'stopProbe',
      'restoreDrill',
      'budgetRelease',
      'writeDrillReport',
    ]);
    assert.ok(fakes.calls.includes('drainNode') && fakes.calls.includes('measureRecovery'));
    assert.deepEqual(
      fakes.report[0]!.phases.map((p) => p.name),
      ['steady-state', 'pod-delete', 'eviction', 'steady-state'],
    );
    const eviction = fakes.report[0]!.phases.find((p) => p.name === 'eviction')!;
    assert.equal(eviction.restoreMs, 0, 'stand-ins have no checkpoint to restore');
    assert.ok(eviction.window.to >= eviction.window.from);
    assert.deepEqual(fakes.restore[0], {
      namespace: 'default',
      deployment: 'llama',
      drillId: 'pass',
      owner: 'drill/pass',
      cordoned: ['gpu-node-2'],
      remove: true,
    });
    assert.equal(result?.pass, true);
    assert.equal(result?.refused, false);
    // The drain asked the budget for a slot after the cordon, never queueing; the rollback returned it.
    const order = (name: string) => fakes.calls.indexOf(name);
    assert.ok(
      order('cordonReplicaNode') < order('budgetAcquire') && order('budgetAcquire') < order('drainNode'),
    );
    assert.deepEqual(fakes.acquire, [{ node: 'gpu-node-2', remediationTimestamps: [], queue: false }]);
    // The drill's own replicas restore from their checkpoint: their emptyDir may go.
    assert.equal((fakes.drains[0] as { deleteEmptyDirData?: boolean }).deleteEmptyDirData, true);
    assert.ok(order('restoreDrill') < order('budgetRelease'));
    assert.ok(fakes.calls.includes('watchContinuity'));
    assert.equal(result?.aborted, undefined);
  });

  it('without drainNode, the eviction phase evicts one replica and never cordons or drains its node', async () => {
    const { fakes, result } = await run('no-drain', { drainNode: false });
    for (const never of [
      'cordonReplicaNode',
      'budgetAcquire',
      'drainNode',
      'measureRecovery',
      'budgetRelease',
    ]) {
      assert.ok(!fakes.calls.includes(never), `${never} was called`);
    }
    assert.deepEqual(
      fakes.calls.filter((c) => c.endsWith('PodAndMeasure')),
      ['deletePodAndMeasure', 'evictPodAndMeasure'],
    );
    assert.deepEqual((fakes.restore[0] as { cordoned: string[] }).cordoned, []);
    assert.deepEqual(
      fakes.report[0]!.phases.map((p) => p.name),
      ['steady-state', 'pod-delete', 'eviction', 'steady-state'],
    );
    assert.match(fakes.report[0]!.phases[2]!.target ?? '', /evicted; its node not drained/);
    assert.equal(result?.pass, true);
  });

  it('a drain the fleet budget refuses evicts nothing: the drill rolls back and reports it aborted', async () => {
    const { fakes, result } = await run('budget-paused', { budgetRefuses: 'paused' });
    for (const never of ['drainNode', 'measureRecovery', 'budgetRelease']) {
      assert.ok(!fakes.calls.includes(never), `${never} was called`);
    }
    assert.deepEqual(fakes.calls.slice(-3), ['stopProbe', 'restoreDrill', 'writeDrillReport']);
    assert.deepEqual((fakes.restore[0] as { cordoned: string[] }).cordoned, ['gpu-node-2']);
    assert.equal(fakes.report[0]!.aborted?.stage, 'eviction');
    assert.match(
      result?.aborted ?? '',
      /^the fleet budget refused to drain gpu-node-2 \(paused\): automation is paused by an operator$/,
    );
    assert.equal(result?.pass, false);
    assert.match(result?.reasons[0] ?? '', /^aborted during eviction: the fleet budget refused/);
  });

  it('the continuity watchdog cancels the running phase, rolls back and reports the abort', async () => {
    const { fakes, result } = await run('watchdog', { breach: true });
    for (const never of ['cordonReplicaNode', 'drainNode']) {
      assert.ok(!fakes.calls.includes(never), `${never} was called`);
    }
    assert.deepEqual(fakes.calls.slice(-3), ['stopProbe', 'restoreDrill', 'writeDrillReport']);
    assert.equal(fakes.report[0]!.aborted?.stage, 'pod-delete');
    assert.match(result?.aborted ?? '', /^the continuity watchdog fired: continuity 0\.10 < 0\.5/);
    assert.equal(result?.pass, false);
  });

  it('a watchdog whose worker died four times is retried, not given up: the drill goes on and passes', async () => {
    const { fakes, result } = await run('watchdog-retried', { watchdogDies: 4 });
    assert.equal(fakes.calls.filter((c) => c === 'watchContinuity').length, 5);
    assert.equal(result?.aborted, undefined, result?.aborted);
    assert.equal(result?.pass, true, result?.reasons.join('; '));
  });

  it('a preflight refusal injects nothing, cleans up and reports the reason', async () => {
    const { fakes, result } = await run('refused', { refuse: true });
    for (const never of [
      'startProbe',
      'deletePodAndMeasure',
      'cordonReplicaNode',
      'drainNode',
      'stopProbe',
    ]) {
      assert.ok(!fakes.calls.includes(never), `${never} was called`);
    }
    assert.deepEqual(fakes.calls.slice(-2), ['restoreDrill', 'writeDrillReport']);
    assert.equal(fakes.report[0]!.probeFile, '');
    assert.deepEqual(fakes.report[0]!.phases, []);
    assert.equal(result?.refused, true);
    assert.deepEqual(result?.reasons, ['no PDB']);
  });

  it('a failed eviction phase rolls back (probe stopped, the cordoned node named) and fails without a report', async () => {
    const { fakes, error } = await run('rollback', { failRecovery: true });
    assert.ok(error instanceof WorkflowFailedError, String(error));
    // The drain slot the drill held is returned after the restore.
    assert.deepEqual(fakes.calls.slice(-3), ['stopProbe', 'restoreDrill', 'budgetRelease']);
    assert.ok(!fakes.calls.includes('writeDrillReport'));
    assert.deepEqual((fakes.restore[0] as { cordoned: string[] }).cordoned, ['gpu-node-2']);
  });
});
