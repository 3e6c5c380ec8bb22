import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node, V1Pod, V1Taint } from '@kubernetes/client-node';
import {
  appendRemediation,
  formatCordonRecord,
  parseCordonRecord,
  parseRemediations,
  planQuarantine,
  planRelease,
  releaseBlockers,
  remediationsPatch,
  type CordonRecord,
} from '../../src/k8s/node-ownership.js';
import {
  CORDON_ANNOTATION,
  QUARANTINED_LABEL,
  QUARANTINE_TAINT_KEY,
  REMEDIATIONS_ANNOTATION,
} from '../../src/k8s/remediation-labels.js';

const NOW = '2026-03-01T12:00:00.000Z';

function node(
  options: {
    unschedulable?: boolean;
    taints?: V1Taint[];
    labels?: Record<string, string>;
    record?: CordonRecord | string;
    gpu?: [capacity: string | undefined, allocatable: string | undefined];
    ready?: boolean;
  } = {},
): V1Node {
  const annotations: Record<string, string> = {};
  if (options.record !== undefined) {
    annotations[CORDON_ANNOTATION] =
      typeof options.record === 'string' ? options.record : formatCordonRecord(options.record);
  }
  const [capacity, allocatable] = options.gpu ?? ['8', '8'];
  return {
    metadata: { name: 'gpu-node-1', resourceVersion: '42', labels: options.labels ?? {}, annotations },
    spec: { unschedulable: options.unschedulable, taints: options.taints },
    status: {
      capacity: capacity === undefined ? {} : { 'nvidia.com/gpu': capacity },
      allocatable: allocatable === undefined ? {} : { 'nvidia.com/gpu': allocatable },
      conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
    },
  };
}

const ours = (over: Partial<CordonRecord> = {}): CordonRecord => ({
  workflowId: 'wf-a',
  reason: 'XID 79',
  at: '2026-03-01T11:00:00.000Z',
  preexistingCordon: false,
  ...over,
});
const quarantineTaint: V1Taint = { key: QUARANTINE_TAINT_KEY, effect: 'NoSchedule' };
const quarantined = (record: CordonRecord, extra: { taints?: V1Taint[] } = {}) =>
  node({
    unschedulable: true,
    taints: [...(extra.taints ?? []), quarantineTaint],
    labels: { [QUARANTINED_LABEL]: 'true' },
    record,
  });

describe('parseCordonRecord', () => {
  const cases: [string, string | undefined, string][] = [
    ['absent', undefined, 'absent'],
    ['a complete record', formatCordonRecord(ours()), 'ok'],
    ['not JSON', '{oops', 'invalid'],
    ['an array', '[]', 'invalid'],
    ['no workflowId', JSON.stringify({ preexistingCordon: false }), 'invalid'],
    ['empty workflowId', JSON.stringify({ workflowId: '', preexistingCordon: false }), 'invalid'],
    ['preexistingCordon missing', JSON.stringify({ workflowId: 'w' }), 'invalid'],
    [
      'preexistingCordon a string',
      JSON.stringify({ workflowId: 'w', preexistingCordon: 'false' }),
      'invalid',
    ],
  ];
  for (const [name, raw, kind] of cases) {
    it(`${name} -> ${kind}`, () => assert.equal(parseCordonRecord(raw).kind, kind));
  }
  it('round-trips a record', () => {
    assert.deepEqual(parseCordonRecord(formatCordonRecord(ours())), { kind: 'ok', record: ours() });
  });
  it('round-trips a record naming its run, and reads one written before runs were named', () => {
    const named = ours({ runId: 'run-1' });
    assert.deepEqual(parseCordonRecord(formatCordonRecord(named)), { kind: 'ok', record: named });
    assert.doesNotMatch(formatCordonRecord(ours()), /runId/);
  });
  it('refuses a runId that is not a non-empty string', () => {
    for (const runId of [7, '', null]) {
      const raw = JSON.stringify({ workflowId: 'w', runId, preexistingCordon: false });
      assert.equal(parseCordonRecord(raw).kind, 'invalid', String(runId));
    }
  });
});

describe('planQuarantine', () => {
  const input = { workflowId: 'wf-a', reason: 'XID 79', now: NOW };

  it('labels, taints NoSchedule, cordons and records ownership in one optimistic patch', () => {
    const plan = planQuarantine(node(), input);
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.deepEqual(plan.record, {
      workflowId: 'wf-a',
      reason: 'XID 79',
      at: NOW,
      preexistingCordon: false,
    });
    assert.deepEqual(plan.patch, {
      metadata: {
        resourceVersion: '42',
        labels: { [QUARANTINED_LABEL]: 'true' },
        annotations: { [CORDON_ANNOTATION]: formatCordonRecord(plan.record) },
      },
      spec: { unschedulable: true, taints: [{ key: QUARANTINE_TAINT_KEY, effect: 'NoSchedule' }] },
    });
  });

  it('names the run in a new record', () => {
    const plan = planQuarantine(node(), { ...input, runId: 'run-1' });
    assert.equal(plan.action === 'patch' && plan.record.runId, 'run-1');
  });

  it("takes over an earlier run's record of the same workflow, keeping its time and preexisting cordon", () => {
    const earlier = ours({ runId: 'run-1', preexistingCordon: true });
    const plan = planQuarantine(quarantined(earlier), { ...input, runId: 'run-2' });
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.deepEqual(plan.record, { ...earlier, runId: 'run-2' });
    assert.equal(plan.patch.metadata.annotations?.[CORDON_ANNOTATION], formatCordonRecord(plan.record));
    // The same run again changes nothing.
    assert.deepEqual(planQuarantine(quarantined(plan.record), { ...input, runId: 'run-2' }), {
      action: 'noop',
      record: plan.record,
    });
  });

  it('records a cordon someone else made as preexisting', () => {
    const plan = planQuarantine(node({ unschedulable: true }), input);
    assert.equal(plan.action === 'patch' && plan.record.preexistingCordon, true);
  });

  it('keeps other taints, with their timeAdded, and replaces a foreign-effect taint of its own key', () => {
    const unreachable: V1Taint = {
      key: 'node.kubernetes.io/unreachable',
      effect: 'NoExecute',
      timeAdded: new Date('2026-03-01T10:00:00.123Z'),
    };
    const plan = planQuarantine(
      node({
        taints: [
          unreachable,
          { key: QUARANTINE_TAINT_KEY, effect: 'NoExecute' },
          { key: 'team', value: 'ml', effect: 'NoSchedule' },
        ],
      }),
      input,
    );
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.deepEqual(plan.patch.spec?.taints, [
      { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: '2026-03-01T10:00:00Z' },
      { key: 'team', value: 'ml', effect: 'NoSchedule' },
      { key: QUARANTINE_TAINT_KEY, effect: 'NoSchedule' },
    ]);
    assert.ok(
      plan.patch.spec?.taints?.every((t) => t.key !== QUARANTINE_TAINT_KEY || t.effect === 'NoSchedule'),
    );
  });

  it('is a no-op when this workflow already quarantined the node', () => {
    const plan = planQuarantine(quarantined(ours()), input);
    assert.deepEqual(plan, { action: 'noop', record: ours() });
  });

  it('restores missing marks for its own quarantine without rewriting the record', () => {
    const record = ours({ preexistingCordon: true });
    const plan = planQuarantine(node({ unschedulable: false, record, labels: {} }), input);
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.deepEqual(plan.record, record, 'the original record (and its preexistingCordon) is kept');
    assert.equal(plan.patch.spec?.unschedulable, true);
  });

  it("refuses another workflow's quarantine, naming it", () => {
    const plan = planQuarantine(quarantined(ours({ workflowId: 'wf-b' })), input);
    assert.equal(plan.action, 'refuse');
    if (plan.action !== 'refuse') return;
    assert.equal(plan.reason, 'QuarantinedByOther');
    assert.match(plan.message, /wf-b/);
  });

  it("takes over a drill's cordon: a new record for the remediation, the drill's preexistingCordon kept", () => {
    for (const preexistingCordon of [false, true]) {
      const drill = ours({ workflowId: 'drill/d1', reason: 'drill d1: node eviction', preexistingCordon });
      const plan = planQuarantine(quarantined(drill), input);
      assert.equal(plan.action, 'patch');
      if (plan.action !== 'patch') return;
      assert.equal(plan.record.workflowId, input.workflowId);
      assert.equal(plan.record.reason, input.reason);
      assert.equal(plan.record.at, NOW);
      assert.equal(plan.record.preexistingCordon, preexistingCordon);
      assert.equal(
        parseCordonRecord(plan.patch.metadata.annotations?.[CORDON_ANNOTATION] ?? undefined).kind,
        'ok',
      );
    }
  });

  it("never lets one drill take over another drill's cordon", () => {
    const plan = planQuarantine(quarantined(ours({ workflowId: 'drill/d1' })), {
      ...input,
      workflowId: 'drill/d2',
    });
    assert.equal(plan.action === 'refuse' && plan.reason, 'QuarantinedByOther');
  });

  it('refuses an unreadable ownership record', () => {
    const plan = planQuarantine(node({ record: 'not json' }), input);
    assert.equal(plan.action === 'refuse' && plan.reason, 'InvalidAnnotation');
  });
});

describe('planRelease', () => {
  it('removes taint, label and record, and uncordons what fleetmedic cordoned', () => {
    const other: V1Taint = { key: 'team', value: 'ml', effect: 'NoSchedule' };
    const plan = planRelease(quarantined(ours(), { taints: [other] }), 'wf-a');
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.equal(plan.uncordon, true);
    assert.deepEqual(plan.patch, {
      metadata: {
        resourceVersion: '42',
        labels: { [QUARANTINED_LABEL]: null },
        annotations: { [CORDON_ANNOTATION]: null },
      },
      spec: { unschedulable: false, taints: [{ key: 'team', value: 'ml', effect: 'NoSchedule' }] },
    });
  });

  it('never uncordons a node that was cordoned before fleetmedic', () => {
    const plan = planRelease(quarantined(ours({ preexistingCordon: true })), 'wf-a');
    assert.equal(plan.action, 'patch');
    if (plan.action !== 'patch') return;
    assert.equal(plan.uncordon, false);
    assert.equal(plan.patch.spec?.unschedulable, undefined, 'the cordon is not touched');
    assert.equal(plan.patch.spec?.taints, null, 'an empty taint list is removed');
  });

  it('refuses a release by another workflow', () => {
    const plan = planRelease(quarantined(ours()), 'wf-b');
    assert.equal(plan.action === 'refuse' && plan.reason, 'NotOwner');
  });

  it('refuses quarantine marks without a record', () => {
    const plan = planRelease(node({ unschedulable: true, labels: { [QUARANTINED_LABEL]: 'true' } }), 'wf-a');
    assert.equal(plan.action === 'refuse' && plan.reason, 'NotOwner');
  });

  it('is a no-op on a node without marks or record (already released)', () => {
    assert.deepEqual(planRelease(node({ unschedulable: true }), 'wf-a'), { action: 'noop' });
  });

  it('refuses an unreadable record', () => {
    const plan = planRelease(node({ record: '{' }), 'wf-a');
    assert.equal(plan.action === 'refuse' && plan.reason, 'InvalidAnnotation');
  });
});

describe('remediation history', () => {
  const cases: [string, string | undefined, boolean][] = [
    ['absent', undefined, true],
    ['empty', '', true],
    ['a list', '["2026-01-01T00:00:00Z"]', true],
    ['not JSON', '[', false],
    ['an object', '{}', false],
    ['a non-time entry', '["yesterday"]', false],
    ['a number entry', '[1]', false],
  ];
  for (const [name, raw, ok] of cases) {
    it(`parses ${name} -> ${ok ? 'ok' : 'error'}`, () => assert.equal(parseRemediations(raw).ok, ok));
  }

  it('appends in time order and keeps the newest 20', () => {
    const history = Array.from({ length: 20 }, (_, k) => new Date(Date.UTC(2026, 0, k + 1)).toISOString());
    const next = appendRemediation(history, '2026-02-01T00:00:00.000Z');
    assert.equal(next.length, 20);
    assert.equal(next[0], history[1]);
    assert.equal(next.at(-1), '2026-02-01T00:00:00.000Z');
    assert.deepEqual(appendRemediation(['2026-01-03T00:00:00Z'], '2026-01-02T00:00:00Z'), [
      '2026-01-02T00:00:00Z',
      '2026-01-03T00:00:00Z',
    ]);
  });

  it('counts the same instant once (a retried activity)', () => {
    assert.deepEqual(appendRemediation(['2026-01-02T00:00:00Z'], '2026-01-02T00:00:00.000Z'), [
      '2026-01-02T00:00:00Z',
    ]);
  });

  it('writes the history in an optimistic patch', () => {
    assert.deepEqual(remediationsPatch(node(), ['2026-01-02T00:00:00Z']), {
      metadata: {
        resourceVersion: '42',
        annotations: { [REMEDIATIONS_ANNOTATION]: '["2026-01-02T00:00:00Z"]' },
      },
    });
  });
});

describe('releaseBlockers', () => {
  const dsPod = (
    name: string,
    phase: string,
    ready: boolean,
    labels: Record<string, string> = {},
  ): V1Pod => ({
    metadata: {
      name,
      namespace: 'gpu-operator',
      uid: `uid-${name}`,
      labels,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name, uid: 'd', controller: true }],
    },
    status: { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  const appPod: V1Pod = {
    metadata: { name: 'web', namespace: 'x', uid: 'w' },
    status: { phase: 'Pending' },
  };

  const cases: {
    name: string;
    node: V1Node;
    pods: V1Pod[];
    expect: RegExp[];
  }[] = [
    {
      name: 'nothing blocks a Ready node with all GPUs and Ready DaemonSet pods (app pods ignored)',
      node: node(),
      pods: [dsPod('plugin', 'Running', true), appPod],
      expect: [],
    },
    {
      name: 'a node with no DaemonSet pods and no selectors',
      node: node(),
      pods: [],
      expect: [],
    },
    {
      name: 'allocatable GPUs below capacity',
      node: node({ gpu: ['8', '0'] }),
      pods: [],
      expect: [/allocatable nvidia.com\/gpu is 0 of 8/],
    },
    {
      name: 'no GPU capacity at all (fails safe)',
      node: node({ gpu: [undefined, undefined] }),
      pods: [],
      expect: [/no nvidia.com\/gpu capacity/],
    },
    { name: 'node not Ready', node: node({ ready: false }), pods: [], expect: [/node is not Ready/] },
    {
      name: 'a DaemonSet pod Running but not Ready',
      node: node(),
      pods: [dsPod('dcgm', 'Running', false)],
      expect: [/gpu-operator\/dcgm is Running and not Ready/],
    },
    {
      name: 'a DaemonSet pod Pending',
      node: node(),
      pods: [dsPod('agent', 'Pending', false)],
      expect: [/agent is Pending and not Ready/],
    },
    {
      name: 'a DaemonSet pod terminating',
      node: node(),
      pods: [
        {
          ...dsPod('plugin', 'Running', true),
          metadata: { ...dsPod('plugin', 'Running', true).metadata, deletionTimestamp: new Date() },
        },
      ],
      expect: [/gpu-operator\/plugin is terminating/],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const blockers = releaseBlockers(c.node, c.pods);
      assert.equal(blockers.length, c.expect.length, blockers.join('; '));
      c.expect.forEach((re, k) => assert.match(blockers[k] ?? '', re));
    });
  }
});
