import type { V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuarantineNodeInput, QuarantineNodeResult } from '../../src/activities/kubernetes/index.js';
import type { NodeView } from '../../src/k8s/views.js';
import { createQuarantineActivities, type QuarantineDeps } from '../../src/activities/quarantine.js';
import type { QuarantineVerdict } from '../../src/domain/fleet-budget.js';
import { formatEpisodeRecord } from '../../src/k8s/episodes.js';
import { formatHold } from '../../src/k8s/node-hold.js';
import { EPISODES_ANNOTATION, HOLD_ANNOTATION } from '../../src/k8s/remediation-labels.js';

const input = {
  node: 'gpu-node-7',
  episodeKey: 'fp@2026-11-27T00:00:00Z',
  workflowId: 'remediation/lab/gpu-node-7',
  runId: 'run-2',
  reason: 'reboot-node: XID 79',
};

const quarantined: QuarantineNodeResult = {
  node: 'gpu-node-7',
  changed: true,
  record: {
    workflowId: input.workflowId,
    runId: input.runId,
    reason: input.reason,
    at: '2026-11-27T00:00:01Z',
    preexistingCordon: false,
  },
};

/** The node as read: 4 GPUs (or `gpus`; null: none reported), and its annotations as given. */
function nodeWith(annotations: Record<string, string> = {}, gpus: string | null = '4'): V1Node {
  return {
    metadata: { name: input.node, resourceVersion: '42', annotations },
    status: { capacity: gpus === null ? {} : { 'nvidia.com/gpu': gpus } },
  };
}

/** A record saying the alert's episode (or a later one of its fingerprint) was handled. */
function handledRecord(startsAt = '2026-11-27T00:00:00Z'): Record<string, string> {
  return {
    [EPISODES_ANNOTATION]: formatEpisodeRecord([
      { fingerprint: 'fp', startsAt, handledAt: '2026-11-27T01:00:00Z' },
    ]),
  };
}

/** Steps that record their calls, answering as told. */
function steps(answers: {
  node?: V1Node | 'gone';
  verdict?: QuarantineVerdict;
  result?: QuarantineNodeResult;
}) {
  const calls: string[] = [];
  const quarantineInputs: QuarantineNodeInput[] = [];
  const read = answers.node === 'gone' ? undefined : (answers.node ?? nodeWith());
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
          answers.node === 'gone'
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
        quarantineInputs.push(i);
        calls.push(
          `quarantine ${i.node} ${i.workflowId} ${i.reason} from ${current === read ? 'the read' : 'elsewhere'}`,
        );
        return Promise.resolve(answers.result ?? quarantined);
      },
    },
  };
  return { calls, quarantineInputs, activities: createQuarantineActivities(deps) };
}

const nodeView: NodeView = {
  name: 'gpu-node-7',
  exists: true,
  cordon: null,
  remediations: ['2026-11-20T00:00:00Z', '2026-11-26T00:00:00Z'],
} as NodeView;

describe('requestDrainSlot', () => {
  it('asks the budget with the remediation times read from the node', async () => {
    const { calls, activities } = steps({});
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
    const { calls, activities } = steps({ node: 'gone' });
    assert.deepEqual(await activities.requestDrainSlot({ node: 'gpu-node-7' }), { kind: 'node-gone' });
    assert.deepEqual(calls, ['getNode gpu-node-7']);
  });
});

describe('quarantineFailedNode', () => {
  const newEpisode = {
    kind: 'quarantined',
    gpuCount: 4,
    preexistingCordon: false,
    episodes: 'new',
    hold: null,
  } as const;

  it('checks the episode, reports the failure, then quarantines from the same read, naming the run', async () => {
    const { calls, quarantineInputs, activities } = steps({});
    assert.deepEqual(await activities.quarantineFailedNode(input), newEpisode);
    assert.deepEqual(calls, [
      'read gpu-node-7',
      'budgetReportFailure gpu-node-7',
      `quarantine gpu-node-7 ${input.workflowId} ${input.reason} from the read`,
    ]);
    assert.equal(quarantineInputs[0]?.runId, 'run-2');
  });

  it("passes on the breaker's count of recent failures, for the machine's storm damping", async () => {
    const verdict: QuarantineVerdict = { allowed: true, detail: 'automation is running', recentFailures: 37 };
    const { activities } = steps({ verdict });
    assert.deepEqual(await activities.quarantineFailedNode(input), { ...newEpisode, recentFailures: 37 });
  });

  it("says the node's GPU count, and null when it reports none or nonsense", async () => {
    for (const [gpus, count] of [
      ['8', 8],
      ['4', 4],
      [null, null],
      ['4.5', null],
      ['two', null],
      ['-1', null],
    ] as const) {
      const { activities } = steps({ node: nodeWith({}, gpus) });
      const r = await activities.quarantineFailedNode(input);
      assert.equal(r.kind === 'quarantined' && r.gpuCount, count, `capacity ${gpus}`);
    }
  });

  it("says the ownership record's preexisting cordon", async () => {
    const result = { ...quarantined, record: { ...quarantined.record, preexistingCordon: true } };
    const { activities } = steps({ result });
    assert.deepEqual(await activities.quarantineFailedNode(input), {
      ...newEpisode,
      preexistingCordon: true,
    });
  });

  it('stops at a handled episode however long ago: no failure reported, nothing quarantined', async () => {
    const { calls, activities } = steps({ node: nodeWith(handledRecord()) });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'duplicate-episode' });
    assert.deepEqual(calls, ['read gpu-node-7']);
  });

  it('stops at an episode older than the one of its fingerprint handled last', async () => {
    const { activities } = steps({ node: nodeWith(handledRecord('2026-11-28T00:00:00Z')) });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'duplicate-episode' });
  });

  it('quarantines a new episode of a fingerprint handled before', async () => {
    const { activities } = steps({ node: nodeWith(handledRecord('2026-11-26T00:00:00Z')) });
    assert.deepEqual(await activities.quarantineFailedNode(input), newEpisode);
  });

  it('fails closed on an unreadable episode record: quarantines, and says the record is unreadable', async () => {
    for (const raw of ['{not json', '{"version":3,"episodes":[]}', '[{"key":1}]']) {
      const { calls, activities } = steps({ node: nodeWith({ [EPISODES_ANNOTATION]: raw }) });
      assert.deepEqual(
        await activities.quarantineFailedNode(input),
        { ...newEpisode, episodes: 'unreadable' },
        raw,
      );
      assert.equal(calls.length, 3);
    }
  });

  it("reports an operator's hold left on the node by an earlier run", async () => {
    const hold = formatHold({
      by: 'alice',
      reason: 'RMA 1234',
      at: '2026-11-20T00:00:00Z',
      workflowId: input.workflowId,
      runId: 'run-1',
    });
    const { activities } = steps({ node: nodeWith({ [HOLD_ANNOTATION]: hold }) });
    assert.deepEqual(await activities.quarantineFailedNode(input), {
      ...newEpisode,
      hold: { by: 'alice', reason: 'RMA 1234' },
    });
  });

  it('fails closed on an unreadable hold: the node reads as held', async () => {
    const { activities } = steps({ node: nodeWith({ [HOLD_ANNOTATION]: '{"by":' }) });
    assert.deepEqual(await activities.quarantineFailedNode(input), {
      ...newEpisode,
      hold: { by: 'unknown', reason: 'hold annotation unreadable' },
    });
  });

  it('fails a node that is gone with a non-retryable NodeNotFound, reporting nothing', async () => {
    const { calls, activities } = steps({ node: 'gone' });
    await assert.rejects(
      activities.quarantineFailedNode(input),
      (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'NodeNotFound',
    );
    assert.deepEqual(calls, ['read gpu-node-7']);
  });

  it('stops when the breaker refuses, with its verdict, and quarantines nothing', async () => {
    const verdict: QuarantineVerdict = {
      allowed: false,
      reason: 'breaker-open',
      detail: 'circuit breaker open: 9 of 10 GPU nodes failed within 5m (more than 50%)',
    };
    const { calls, activities } = steps({ verdict });
    assert.deepEqual(await activities.quarantineFailedNode(input), { kind: 'blocked', verdict });
    assert.deepEqual(calls.at(-1), 'budgetReportFailure gpu-node-7');
  });

  for (const [field, value, pattern] of [
    ['node', '', /input\.node: .*got "" \(string\)/],
    ['node', 'Not_A_Name', /input\.node: must be a Kubernetes object name, got "Not_A_Name" \(string\)/],
    ['runId', undefined, /input\.runId: .*got undefined \(undefined\)/],
    ['episodeKey', 42, /input\.episodeKey: .*got 42 \(number\)/],
  ] as const) {
    it(`refuses ${field} = ${JSON.stringify(value)}, naming the field, before any step`, async () => {
      const { calls, activities } = steps({});
      await assert.rejects(
        activities.quarantineFailedNode({ ...input, [field]: value }),
        (err: unknown) =>
          err instanceof ApplicationFailure &&
          err.nonRetryable &&
          err.type === 'InvalidInput' &&
          /^quarantineFailedNode: /.test(err.message) &&
          pattern.test(err.message),
      );
      assert.deepEqual(calls, []);
    });
  }
});
