import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1DaemonSet, V1Node, V1PodSpec, V1Pod, V1Taint } from '@kubernetes/client-node';
import { selectorMatches } from '../../src/domain/capacity.js';
import { ConfigError } from '../../src/errors.js';
import {
  daemonSetSchedulesOn,
  DEFAULT_GPU_DAEMONSET_SELECTORS,
  gpuDaemonSetBlockers,
  gpuDaemonSetSelectors,
  parseLabelSelector,
} from '../../src/k8s/gpu-daemonsets.js';

describe('parseLabelSelector', () => {
  const valid: { text: string; matches: Record<string, string>[]; misses: Record<string, string>[] }[] = [
    { text: 'app=a', matches: [{ app: 'a' }], misses: [{ app: 'b' }, {}] },
    { text: 'app == a', matches: [{ app: 'a', x: 'y' }], misses: [{}] },
    { text: 'app!=a', matches: [{ app: 'b' }, {}], misses: [{ app: 'a' }] },
    { text: 'tier in (x, y)', matches: [{ tier: 'y' }], misses: [{ tier: 'z' }, {}] },
    { text: 'tier notin (x,y)', matches: [{ tier: 'z' }, {}], misses: [{ tier: 'x' }] },
    { text: 'canary', matches: [{ canary: '' }], misses: [{}] },
    { text: '!canary', matches: [{}], misses: [{ canary: 'true' }] },
    {
      text: 'app.kubernetes.io/name=fleetmedic, app.kubernetes.io/component=node-agent',
      matches: [{ 'app.kubernetes.io/name': 'fleetmedic', 'app.kubernetes.io/component': 'node-agent' }],
      misses: [{ 'app.kubernetes.io/name': 'fleetmedic', 'app.kubernetes.io/component': 'worker' }],
    },
    { text: 'a in (x,y),b', matches: [{ a: 'x', b: '1' }], misses: [{ a: 'x' }] },
    { text: 'app=', matches: [{ app: '' }], misses: [{ app: 'a' }] },
  ];
  for (const c of valid) {
    it(`parses ${JSON.stringify(c.text)}`, () => {
      const parsed = parseLabelSelector(c.text);
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
      for (const labels of c.matches) assert.equal(selectorMatches(parsed.selector, labels), true);
      for (const labels of c.misses) assert.equal(selectorMatches(parsed.selector, labels), false);
    });
  }

  const invalid: { text: string; error: RegExp }[] = [
    { text: '', error: /empty selector/ },
    { text: '  ', error: /empty selector/ },
    { text: 'app in (a', error: /unbalanced/ },
    { text: 'app in ((a))', error: /unbalanced/ },
    { text: 'app in ()', error: /"app in \(\)" lists no value/ },
    { text: 'Bad Key=x', error: /none of key/ },
    { text: 'a=b=c', error: /"b=c" is not a label value/ },
    { text: 'app=a,', error: /none of key/ },
    { text: '-app=a', error: /"-app" is not a label key/ },
    { text: `app=${'v'.repeat(64)}`, error: /is not a label value/ },
    { text: 'app > 3', error: /none of key/ },
  ];
  for (const c of invalid) {
    it(`refuses ${JSON.stringify(c.text)}`, () => {
      const parsed = parseLabelSelector(c.text);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.match(parsed.error, c.error);
    });
  }

  it('accepts every default selector', () => {
    assert.deepEqual(
      gpuDaemonSetSelectors(DEFAULT_GPU_DAEMONSET_SELECTORS).map((s) => s.text),
      DEFAULT_GPU_DAEMONSET_SELECTORS,
    );
  });

  it('gpuDaemonSetSelectors names the selector that is not one', () => {
    assert.throws(
      () => gpuDaemonSetSelectors(['app=a', 'app in (b'], 'FLEETMEDIC_GPU_DAEMONSET_SELECTORS'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /FLEETMEDIC_GPU_DAEMONSET_SELECTORS: "app in \(b" is not a label selector/.test(err.message),
    );
  });
});

const QUARANTINE: V1Taint = { key: 'fleetmedic.io/quarantine', effect: 'NoSchedule' };

function gpuNode(options: { taints?: V1Taint[]; labels?: Record<string, string> } = {}): V1Node {
  return {
    metadata: {
      name: 'gpu-1',
      labels: { 'nvidia.com/gpu.present': 'true', 'kubernetes.io/hostname': 'gpu-1', ...options.labels },
    },
    spec: { unschedulable: true, taints: options.taints ?? [QUARANTINE] },
  };
}

function daemonSet(
  name: string,
  labels: Record<string, string>,
  spec: Partial<V1PodSpec> = {},
  extra: { deleting?: boolean; namespace?: string; uid?: string } = {},
): V1DaemonSet {
  return {
    metadata: {
      name,
      namespace: extra.namespace ?? 'gpu-operator',
      uid: extra.uid ?? `ds-${name}`,
      ...(extra.deleting ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
    },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: 'c' }],
          tolerations: [{ operator: 'Exists' }],
          ...spec,
        },
      },
    },
  };
}

function podOf(ds: V1DaemonSet, state: 'ready' | 'not-ready' | 'pending' | 'terminating'): V1Pod {
  return {
    metadata: {
      name: `${ds.metadata!.name}-x1`,
      namespace: ds.metadata!.namespace,
      uid: `pod-${ds.metadata!.name}`,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          name: ds.metadata!.name!,
          uid: ds.metadata!.uid!,
          controller: true,
        },
      ],
      ...(state === 'terminating' ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
    },
    spec: { nodeName: 'gpu-1', containers: [{ name: 'c' }] },
    status: {
      phase: state === 'pending' ? 'Pending' : 'Running',
      conditions: [
        { type: 'Ready', status: state === 'ready' || state === 'terminating' ? 'True' : 'False' },
      ],
    },
  };
}

describe('daemonSetSchedulesOn', () => {
  const cases: { name: string; spec: Partial<V1PodSpec>; node?: V1Node; expect: boolean }[] = [
    { name: 'no constraints, tolerating everything', spec: {}, expect: true },
    {
      name: 'a matching nodeSelector',
      spec: { nodeSelector: { 'nvidia.com/gpu.present': 'true' } },
      expect: true,
    },
    {
      name: 'a nodeSelector the node lacks',
      spec: { nodeSelector: { accelerator: 'nvidia' } },
      expect: false,
    },
    {
      name: 'required node affinity that matches (terms ORed)',
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'x', operator: 'Exists' }] },
                { matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'In', values: ['true'] }] },
              ],
            },
          },
        },
      },
      expect: true,
    },
    {
      name: 'required node affinity that does not match',
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'DoesNotExist' }] },
              ],
            },
          },
        },
      },
      expect: false,
    },
    {
      name: 'required node affinity on metadata.name (matchFields)',
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['gpu-2'] }] },
              ],
            },
          },
        },
      },
      expect: false,
    },
    {
      name: 'an affinity operator it does not know counts as admitting the node (fails safe: required)',
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'x', operator: 'Someday', values: ['y'] }] }],
            },
          },
        },
      },
      expect: true,
    },
    {
      name: 'without tolerations: the quarantine taint and the cordon do not count (the release lifts them)',
      spec: { tolerations: [] },
      node: gpuNode({
        taints: [QUARANTINE, { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }],
      }),
      expect: true,
    },
    {
      name: 'an untolerated NoSchedule taint of someone else keeps it off the node',
      spec: { tolerations: [] },
      node: gpuNode({ taints: [QUARANTINE, { key: 'dedicated', value: 'infer', effect: 'NoSchedule' }] }),
      expect: false,
    },
    {
      name: 'an untolerated NoExecute taint keeps it off the node',
      spec: { tolerations: [{ key: 'other', operator: 'Exists' }] },
      node: gpuNode({ taints: [{ key: 'maintenance', effect: 'NoExecute' }] }),
      expect: false,
    },
    {
      name: 'a tolerated taint, and PreferNoSchedule, do not',
      spec: { tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] },
      node: gpuNode({
        taints: [
          { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' },
          { key: 'soft', effect: 'PreferNoSchedule' },
        ],
      }),
      expect: true,
    },
    {
      name: 'network-unavailable is tolerated only by host-network pods',
      spec: { tolerations: [] },
      node: gpuNode({ taints: [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' }] }),
      expect: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(
        daemonSetSchedulesOn(daemonSet('ds', { app: 'x' }, c.spec), c.node ?? gpuNode()),
        c.expect,
      );
    });
  }
});

describe('gpuDaemonSetBlockers', () => {
  const selectors = gpuDaemonSetSelectors(DEFAULT_GPU_DAEMONSET_SELECTORS);
  const plugin = daemonSet('nvidia-device-plugin-daemonset', { app: 'nvidia-device-plugin-daemonset' });
  const dcgm = daemonSet('nvidia-dcgm-exporter', { app: 'nvidia-dcgm-exporter' });
  const agent = daemonSet(
    'fleetmedic-node-agent',
    {
      'app.kubernetes.io/name': 'fleetmedic',
      'app.kubernetes.io/instance': 'fleetmedic',
      'app.kubernetes.io/component': 'node-agent',
    },
    {},
    { namespace: 'fleetmedic' },
  );
  const logging = daemonSet('fluent-bit', { app: 'fluent-bit' }, {}, { namespace: 'logging' });

  const cases: {
    name: string;
    daemonSets: V1DaemonSet[];
    pods: V1Pod[];
    node?: V1Node;
    expect: RegExp[];
  }[] = [
    {
      name: 'a cluster without GPU DaemonSets (a simulation) requires nothing',
      daemonSets: [],
      pods: [],
      expect: [],
    },
    {
      name: 'a DaemonSet no selector matches is not required',
      daemonSets: [logging],
      pods: [],
      expect: [],
    },
    {
      name: 'every GPU DaemonSet with a Running and Ready pod',
      daemonSets: [plugin, dcgm, agent, logging],
      pods: [podOf(plugin, 'ready'), podOf(dcgm, 'ready'), podOf(agent, 'ready')],
      expect: [],
    },
    {
      name: 'the device plugin without a pod on the node is named, with the likely cause',
      daemonSets: [plugin, dcgm],
      pods: [podOf(dcgm, 'ready')],
      expect: [
        /^GPU DaemonSet gpu-operator\/nvidia-device-plugin-daemonset \(app=nvidia-device-plugin-daemonset\) has no pod on the node \(does it tolerate the fleetmedic.io\/quarantine taint\?\)$/,
      ],
    },
    {
      name: 'pods not Ready, Pending or terminating do not count',
      daemonSets: [plugin, dcgm, agent],
      pods: [podOf(plugin, 'not-ready'), podOf(dcgm, 'pending'), podOf(agent, 'terminating')],
      expect: [
        /nvidia-device-plugin-daemonset .* has no Running and Ready pod/,
        /nvidia-dcgm-exporter .* has no Running and Ready pod/,
        /fleetmedic\/fleetmedic-node-agent \(app.kubernetes.io\/name=fleetmedic,app.kubernetes.io\/component=node-agent\) has no Running and Ready pod/,
      ],
    },
    {
      name: "another DaemonSet's pod with the same labels does not stand in for it",
      daemonSets: [plugin],
      pods: [
        podOf(
          daemonSet(
            'nvidia-device-plugin-daemonset',
            { app: 'nvidia-device-plugin-daemonset' },
            {},
            { namespace: 'old', uid: 'ds-old' },
          ),
          'ready',
        ),
      ],
      expect: [/gpu-operator\/nvidia-device-plugin-daemonset/],
    },
    {
      name: 'a GPU DaemonSet that would not run on this node is not required',
      daemonSets: [
        daemonSet('dcgm-a100', { app: 'nvidia-dcgm-exporter' }, { nodeSelector: { gpu: 'a100' } }),
      ],
      pods: [],
      expect: [],
    },
    {
      name: 'a GPU DaemonSet being deleted is not waited for',
      daemonSets: [
        daemonSet('nvidia-dcgm-exporter', { app: 'nvidia-dcgm-exporter' }, {}, { deleting: true }),
      ],
      pods: [],
      expect: [],
    },
    {
      name: 'a DaemonSet matched by several selectors is named once',
      daemonSets: [
        daemonSet('both', { app: 'nvidia-dcgm-exporter', 'app.kubernetes.io/name': 'dcgm-exporter' }),
      ],
      pods: [],
      expect: [/gpu-operator\/both \(app=nvidia-dcgm-exporter\)/],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const blockers = gpuDaemonSetBlockers(c.node ?? gpuNode(), selectors, c.daemonSets, c.pods);
      assert.equal(blockers.length, c.expect.length, blockers.join('; '));
      c.expect.forEach((re, k) => assert.match(blockers[k] ?? '', re));
    });
  }

  it('only the configured selectors count', () => {
    const custom = gpuDaemonSetSelectors(['app=fluent-bit']);
    assert.deepEqual(gpuDaemonSetBlockers(gpuNode(), custom, [plugin], []), []);
    assert.equal(gpuDaemonSetBlockers(gpuNode(), custom, [plugin, logging], []).length, 1);
  });
});
