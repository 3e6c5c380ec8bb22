import type { V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuarantineNodeResult } from '../../src/activities/kubernetes.js';
import type { NodeView } from '../../src/k8s/views.js';
import { createQuarantineActivities, type QuarantineDeps } from '../../src/activities/quarantine.js';
import { EPISODES_ANNOTATION } from '../../src/activities/remediation-support.js';
import type { QuarantineVerdict } from '../../src/domain/fleet-budget.js';

const input = {
  node: 'gpu-node-7',
  episodeKey: 'fp@2026-11-27T00:00:00Z',
  cooldownMs: 86_400_000,
  workflowId: 'remediation/lab/gpu-node-7',
  reason: 'reboot-node: XID 79',
};

const quarantined: QuarantineNodeResult = {
  node: 'gpu-node-7',
  changed: true,
  record: {
    workflowId: input.workflowId,
    reason: input.reason,
    at: '2026-11-27T00:00:01Z',
    preexistingCordon: false,
  },
};

/** The node as read: `handled` adds the alert's episode to its handled episodes, an hour ago. */
function nodeAs(handled: boolean, annotation?: string): V1Node {
  const episodes = handled
    ? [{ key: input.episodeKey, handledAt: new Date(Date.now() - 3_600_000).toISOString() }]
    : [];
  return {
    metadata: {
      name: input.node,
      resourceVersion: '42',
      annotations: { [EPISODES_ANNOTATION]: annotation ?? JSON.stringify(episodes) },
    },
  };
}

/** Steps that record their calls, answering as told. */
function steps(answers: { handled: boolean | 'node-gone'; verdict?: QuarantineVerdict; node?: V1Node }) {
  const calls: string[] = [];
  const read = answers.handled === 'node-gone' ? undefined : (answers.node ?? nodeAs(answers.handled));
  const deps: QuarantineDeps = {
    support: {
      budgetReportFailure: (i) => {
        calls.push(`budgetReportFailure ${i.node}`);
        return Promise.resolve(answers.verdict ?? { allowed: true, detail: 'automation is running' });
      },
      budgetAcquire: (i) => {
        calls.push(`budgetAcquire ${i.node} ${i.remediationTimestamps.join(',')}`);
        return Promise.resolve({ admitted: true, escalateTo: null, detail: 'slot granted' });
      },
    },
    kubernetes: {
      getNode: (i) => {
        calls.push(`getNode ${i.node}`);
        return Promise.resolve(
          answers.handled === 'node-gone'
            ? { name: i.node, exists: false as const }
            : ({ ...nodeView, name: i.node } satisfies NodeView),
        );
      },
    },
    steps: {
      read: (name) => {
        calls.push(`read ${name}`);
        return Promise.resolve(read);
      },
      quarantine: (i, current) => {
        calls.push(
          `quarantine ${i.node} ${i.workflowId} ${i.reason} from ${current === read ? 'the read' : 'elsewhere'}`,
        );
        return Promise.resolve(quarantined);
      },
    },
  };
  return { calls, activities: createQuarantineActivities(deps) };
}

const nodeView: NodeView = {
  name: 'gpu-node-7',
  exists: true,
  cordon: null,
  remediations: ['2026-11-20T00:00:00Z', '2026-11-26T00:00:00Z'],
} as NodeView;

describe('requestDrainSlot', () => {
  it('asks the budget with the remediation times read from the node', async () => {
    const { calls, activities } = steps({ handled: false });
    assert.deepEqual(await activities.requestDrainSlot({ node: 'gpu-node-7' }), {
      kind: 'answered',
      admission: { admitted: true, escalateTo: null, detail: 'slot granted' },
    });
    assert.deepEqual(calls, [
      'getNode gpu-node-7',
      `budgetAcquire gpu-node-7 ${Date.parse('2026-11-20T00:00:00Z')},${Date.parse('2026-11-26T00:00:00Z')}`,
    ]);
  });

  it('asks nothing for a node that is gone', async () => {
    const { calls, activities } = steps({ handled: 'node-gone' });
    assert.deepEqual(await activities.requestDrainSlot({ node: 'gpu-node-7' }), { kind: 'node-gone' });
    assert.deepEqual(calls, ['getNode gpu-node-7']);
  });
});

describe('quarantineFailedNode', () => {
  it('checks the episode, reports the failure, then quarantines', async () => {
    const { calls, activities } = steps({ handled: false });
    assert.deepEqual(await activities.quarantineFailedNode(input), {
      kind: 'quarantined',
      result: quarantined,
    });
    assert.deepEqual(calls, [
      'read gpu-node-7',
      'budgetReportFailure gpu-node-7',
      `quarantine gpu-node-7 ${input.workflowId} ${input.reason} from the read`,
    ]);
  });

  it("passes on the breaker's count of recent failures, for the workflow's storm damping", async () => {
    const verdict: QuarantineVerdict = { allowed: true, detail: 'automation is running', recentFailures: 37 };
    const { activities } = steps({ handled: false, verdict });
    assert.deepEqual(await activities.quarantineFailedNode(input), {
      kind: 'quarantined',
      result: quarantined,
      recentFailures: 37,
    });
  });

  it('quarantines again after the cooldown of a handled episode', async () => {
    const { calls, activities } = steps({ handled: true });
    const result = await activities.quarantineFailedNode({ ...input, cooldownMs: 60_000 });
    assert.equal(result.kind, 'quarantined');
    assert.equal(calls.length, 3);
  });

  it('reads a damaged episode annotation as no episode, and quarantines', async () => {
    const { activities } = steps({ handled: false, node: nodeAs(false, '{not json') });
    assert.equal((await activities.quarantineFailedNode(input)).kind, 'quarantined');
  });

  it('stops at a handled episode: no failure reported, nothing quarantined', async () => {
    const { calls, activities } = steps({ handled: true });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'duplicate-episode' });
    assert.equal(calls.length, 1);
  });

  it('stops at a node that is gone', async () => {
    const { calls, activities } = steps({ handled: 'node-gone' });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'node-gone' });
    assert.equal(calls.length, 1);
  });

  it('stops when the breaker refuses, with its verdict, and quarantines nothing', async () => {
    const verdict: QuarantineVerdict = {
      allowed: false,
      reason: 'breaker-open',
      detail: 'circuit breaker open: 9 of 10 GPU nodes failed within 5m (more than 50%)',
    };
    const { calls, activities } = steps({ handled: false, verdict });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'blocked', verdict });
    assert.deepEqual(calls.at(-1), 'budgetReportFailure gpu-node-7');
  });

  it('refuses an input without a node, naming the field, before any step', async () => {
    const { calls, activities } = steps({ handled: false });
    await assert.rejects(
      activities.quarantineFailedNode({ ...input, node: '' }),
      (err: unknown) =>
        err instanceof ApplicationFailure &&
        err.nonRetryable &&
        err.type === 'InvalidInput' &&
        /node must be a non-empty string, got ""/.test(err.message),
    );
    assert.deepEqual(calls, []);
  });
});
