import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type InjectedSinks } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  alertSignal,
  REMEDIATION_WORKFLOW,
  statusQuery,
  type PhaseEventSinks,
  type RemediationInput,
  type RemediationStatus,
} from '../../src/contracts/remediation.js';
import type { AlertSignal } from '../../src/domain/remediation-plan.js';
import { FailureType } from '../../src/errors.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { eventually } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { createTemporalTestEnv, installQuietRuntime } from '../helpers/temporal.js';

// The remediation workflow on a real Temporal dev server with fake activities (no cluster): how a
// failure of an activity reaches the run. A non-retryable failure is tried once and shown in the run's
// reasons; a retryable one is retried by Temporal's policy. The path is XID 13's light one: episode
// check, pod restart, episodes recorded (an effect), end.
describe(
  'remediation: permanent and transient activity failures (fake activities)',
  { timeout: 120_000 },
  () => {
    let env: TestWorkflowEnvironment;
    let client: Client;
    let worker: Worker;
    let running: Promise<void>;
    const taskQueue = `remediation-effects-${randomUUID()}`;
    const calls: Record<string, number> = {};
    /** What each fake does on its n-th call (1-based); by default it succeeds. */
    let behaviour: Partial<Record<string, (n: number) => void>> = {};
    const fake =
      <R>(name: string, result: R) =>
      (): Promise<R> => {
        const n = (calls[name] = (calls[name] ?? 0) + 1);
        behaviour[name]?.(n);
        return Promise.resolve(result);
      };

    before(async () => {
      installQuietRuntime();
      env = await createTemporalTestEnv();
      client = env.client;
      const noSinks: InjectedSinks<PhaseEventSinks> = { phaseEvents: { record: { fn() {} } } };
      worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        activities: {
          checkEpisode: fake('checkEpisode', { verdict: 'new' }),
          restartPods: fake('restartPods', { restarted: ['default/app-0'] }),
          recordEpisodes: fake('recordEpisodes', undefined),
          quarantineFailedNode: fake('quarantineFailedNode', undefined),
          notify: fake('notify', undefined),
        },
        sinks: noSinks,
        workflowBundle: await bundleWorkflowCode({
          ...workflowBundleOptions(),
          logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
        }),
      });
      running = worker.run();
    });

    after(async () => {
      worker?.shutdown();
      await running;
      await env?.teardown();
    });

    beforeEach(() => {
      for (const key of Object.keys(calls)) delete calls[key];
      behaviour = {};
    });

    async function remediate(node: string): Promise<RemediationStatus> {
      const handle = await client.workflow.signalWithStart<
        (input: RemediationInput) => Promise<RemediationStatus>,
        [AlertSignal]
      >(REMEDIATION_WORKFLOW, {
        workflowId: `remediation-effects/${node}`,
        taskQueue,
        args: [{ clusterId: 'unit', node, policy: FAST_POLICY }],
        signal: alertSignal,
        signalArgs: [xidAlert(13, { pods: [{ namespace: 'default', name: 'app-0' }] })],
      });
      return handle.result();
    }

    it('an effect that fails with a non-retryable type is tried once and the run shows why', async () => {
      behaviour.recordEpisodes = () => {
        throw ApplicationFailure.nonRetryable(
          'annotation fleetmedic.io/episodes is not JSON',
          FailureType.InvalidAnnotation,
        );
      };
      const end = await remediate('gpu-effect-permanent');
      assert.equal(calls.recordEpisodes, 1, 'a non-retryable failure must not be retried');
      assert.equal(end.outcome, 'pods-restarted', end.reasons.join('\n'));
      assert.ok(
        end.reasons.includes('recordEpisodes failed: annotation fleetmedic.io/episodes is not JSON'),
        end.reasons.join('\n'),
      );
    });

    it('an effect that fails with a retryable error is retried until it succeeds, and leaves no reason', async () => {
      behaviour.recordEpisodes = (n) => {
        if (n < 3) throw ApplicationFailure.retryable('the API server is busy', 'TooManyRequests');
      };
      const end = await remediate('gpu-effect-transient');
      assert.equal(calls.recordEpisodes, 3);
      assert.equal(end.outcome, 'pods-restarted', end.reasons.join('\n'));
      assert.ok(!end.reasons.some((r) => r.startsWith('recordEpisodes failed')), end.reasons.join('\n'));
    });

    it('a step that fails with a non-retryable type is tried once and its failure decides the path', async () => {
      behaviour.restartPods = () => {
        throw ApplicationFailure.nonRetryable(
          'app-0 not evicted before the deadline',
          FailureType.RestartDeadlineExceeded,
        );
      };
      behaviour.quarantineFailedNode = () => {
        throw ApplicationFailure.nonRetryable('an operator holds gpu-step-permanent', FailureType.NodeHeld);
      };
      const node = 'gpu-step-permanent';
      // Its rejection (the termination below) is handled from the start: a rejection seen unhandled
      // for a moment fails the test (it did on Node 26).
      const terminated = assert.rejects(remediate(node), /test done/);
      const handle = client.workflow.getHandle(`remediation-effects/${node}`);
      // The failed restart escalates to a quarantine, refused too: the run holds the node for an operator.
      const status = await eventually('the run held for an operator', async () => {
        const s = await handle.query(statusQuery).catch(() => undefined);
        return s?.reasons.some((r) => r.startsWith('quarantine failed')) ? s : undefined;
      });
      assert.equal(calls.restartPods, 1, 'a non-retryable step failure must not be retried');
      assert.equal(
        calls.quarantineFailedNode,
        1,
        'a non-retryable local activity failure must not be retried',
      );
      assert.equal(status.class, 'needs-operator');
      assert.equal(status.outcome, null, 'the run stays open');
      const reasons = status.reasons.join('\n');
      assert.match(
        reasons,
        /pod restart failed \(RestartDeadlineExceeded: app-0 not evicted before the deadline\)/,
      );
      assert.match(reasons, /quarantine failed \(NodeHeld: an operator holds gpu-step-permanent\)/);
      await handle.terminate('test done');
      await terminated;
    });
  },
);
