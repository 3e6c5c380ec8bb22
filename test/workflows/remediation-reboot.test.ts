import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type InjectedSinks } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createNodeAgentActivities } from '../../src/activities/node-agent.js';
import type { AwaitNewBootInput } from '../../src/activities/kubernetes/index.js';
import { nodeTaskQueue } from '../../src/contracts/ids.js';
import {
  alertSignal,
  approveUpdate,
  REMEDIATION_WORKFLOW,
  statusQuery,
  type PhaseEventSinks,
  type RemediationInput,
  type RemediationStatus,
} from '../../src/contracts/remediation.js';
import type { AlertSignal } from '../../src/domain/remediation-plan.js';
import type { CommandRunner } from '../../src/gpu/command-runner.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { eventually } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { createTemporalTestEnv, installQuietRuntime } from '../helpers/temporal.js';

// An approved reboot on a real Temporal dev server: the control steps are fakes, the node agent's
// activities the real ones over a fake node (a boot ID and a reboot counter). The reboot kills the
// agent's first attempt, as it does on a real node; the retried attempt carries the boot ID the
// workflow recorded, sees the node on another boot, and never reboots it again.
describe(
  'remediation: a reboot that kills its own attempt happens once (fake cluster)',
  { timeout: 120_000 },
  () => {
    const CLUSTER = 'unit';
    const NODE = 'gpu-reboot-once';
    let env: TestWorkflowEnvironment;
    let client: Client;
    let workers: Worker[];
    let running: Promise<unknown>;
    const taskQueue = `remediation-reboot-${randomUUID()}`;
    const node = { bootId: 'boot-1', reboots: 0, ready: true };
    const seen: { rebootInputs: unknown[]; awaited: AwaitNewBootInput[] } = { rebootInputs: [], awaited: [] };

    before(async () => {
      installQuietRuntime();
      env = await createTemporalTestEnv();
      client = env.client;
      const noSinks: InjectedSinks<PhaseEventSinks> = { phaseEvents: { record: { fn() {} } } };
      const done =
        <R>(r: R) =>
        () =>
          Promise.resolve(r);
      const runner: CommandRunner = {
        run: () => Promise.reject(new Error('no GPU tool in this test')),
        reboot: () => {
          node.reboots++;
          node.bootId = `boot-${node.reboots + 1}`;
          // The reboot takes the agent down with it: this attempt never reports back.
          return Promise.reject(ApplicationFailure.retryable('agent killed by the reboot', 'AgentKilled'));
        },
      };
      const agent = createNodeAgentActivities({
        clusterId: CLUSTER,
        node: NODE,
        runner,
        readBootId: () => Promise.resolve(node.bootId),
      });
      workers = [
        await Worker.create({
          connection: env.nativeConnection,
          taskQueue,
          activities: {
            quarantineFailedNode: done({
              kind: 'quarantined',
              gpuCount: 8,
              preexistingCordon: false,
              episodes: 'new',
              hold: null,
            }),
            requestDrainSlot: done({
              kind: 'answered',
              admission: { admitted: true, escalateTo: null, detail: '1 of 1 drain slot(s) in use' },
            }),
            checkCapacity: done({ fits: true, unplaced: [] }),
            drainNode: done({ evicted: 0, refused429: 0 }),
            budgetRelease: done(undefined),
            readBootId: () => Promise.resolve({ bootId: node.bootId }),
            awaitNewBoot: (input: AwaitNewBootInput) => {
              seen.awaited.push(input);
              return node.bootId !== input.bootIdBefore
                ? Promise.resolve({ bootId: node.bootId })
                : Promise.reject(ApplicationFailure.nonRetryable('no new boot', 'RebootDeadlineExceeded'));
            },
            recordRemediation: done(undefined),
            releaseNode: done({ leftCordoned: false }),
            recordEpisodes: done(undefined),
            notify: done(undefined),
          },
          sinks: noSinks,
          workflowBundle: await bundleWorkflowCode({
            ...workflowBundleOptions(),
            logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
          }),
        }),
        await Worker.create({
          connection: env.nativeConnection,
          taskQueue: nodeTaskQueue(CLUSTER, NODE),
          activities: {
            agentTriage: done({}),
            agentDiag: done({ passed: true, runtimeError: null, errors: [] }),
            agentRebootNode: (input: Parameters<typeof agent.agentRebootNode>[0]) => {
              seen.rebootInputs.push(input);
              return agent.agentRebootNode(input);
            },
          },
        }),
      ];
      running = Promise.all(workers.map((w) => w.run()));
    });

    after(async () => {
      for (const w of workers ?? []) w.shutdown();
      await running;
      await env?.teardown();
    });

    it('records the boot ID first, reboots once, waits for the new boot, then validates and releases', async () => {
      const handle = await client.workflow.signalWithStart<
        (input: RemediationInput) => Promise<RemediationStatus>,
        [AlertSignal]
      >(REMEDIATION_WORKFLOW, {
        workflowId: `remediation-reboot/${NODE}`,
        taskQueue,
        args: [{ clusterId: CLUSTER, node: NODE, policy: FAST_POLICY }],
        signal: alertSignal,
        signalArgs: [xidAlert(79)],
      });
      await eventually('waiting for approval', async () => {
        const s = await handle.query(statusQuery).catch(() => undefined);
        return s?.phase === 'awaiting-approval' ? s : undefined;
      });
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'reboot window' }] });
      const end = await handle.result();
      assert.equal(end.outcome, 'returned-to-service', end.reasons.join('\n'));
      assert.equal(node.reboots, 1, 'the retried attempt rebooted the node again');
      // Both attempts carried the boot ID recorded before the reboot.
      assert.deepEqual(seen.rebootInputs, [
        { clusterId: CLUSTER, node: NODE, bootIdBefore: 'boot-1' },
        { clusterId: CLUSTER, node: NODE, bootIdBefore: 'boot-1' },
      ]);
      assert.deepEqual(
        seen.awaited.map((a) => a.bootIdBefore),
        ['boot-1'],
      );
      const reasons = end.reasons.join('\n');
      assert.match(reasons, /already left boot boot-1: not rebooted again/);
      assert.match(reasons, /back from its reboot \(boot boot-2\)/);
    });
  },
);
