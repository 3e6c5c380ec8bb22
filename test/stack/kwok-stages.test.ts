import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROCESS_LABEL } from '../../src/k8s/labels.js';
import { processRunnerStages, type KwokStage } from '../../src/stack/kwok-stages.js';

const stage = (name: string, kind: 'Pod' | 'Node'): KwokStage => ({
  apiVersion: 'kwok.x-k8s.io/v1alpha1',
  kind: 'Stage',
  metadata: { name },
  spec: {
    resourceRef: { apiGroup: 'v1', kind },
    selector: { matchExpressions: [{ key: '.metadata.deletionTimestamp', operator: 'Exists' }] },
    next: { delete: true },
  },
});

describe("kwok stages: kwok's defaults, changed for the process runner's pods", () => {
  const defaults = [
    stage('node-initialize', 'Node'),
    stage('node-heartbeat-with-lease', 'Node'),
    stage('pod-ready', 'Pod'),
    stage('pod-complete', 'Pod'),
    stage('pod-delete', 'Pod'),
  ];
  const key = `.metadata.labels["${PROCESS_LABEL}"]`;

  it('keeps runner pods out of pod-ready and pod-delete, and changes nothing else', () => {
    const out = processRunnerStages(defaults);
    for (const name of ['pod-ready', 'pod-delete']) {
      const exprs = out.find((s) => s.metadata.name === name)!.spec.selector!.matchExpressions!;
      assert.deepEqual(exprs.at(-1), { key, operator: 'DoesNotExist' });
      assert.equal(exprs.length, 2, 'the default expressions are kept');
    }
    for (const name of ['node-initialize', 'node-heartbeat-with-lease', 'pod-complete']) {
      assert.deepEqual(
        out.find((s) => s.metadata.name === name),
        defaults.find((s) => s.metadata.name === name),
      );
    }
    assert.equal(defaults[2]!.spec.selector!.matchExpressions!.length, 1, 'the input was changed');
  });

  it('adds a start stage for runner pods: Running with kwok pod IPs, not Ready', () => {
    const start = processRunnerStages(defaults).at(-1)!;
    assert.equal(start.metadata.name, 'fleetmedic-process-pod-start');
    assert.deepEqual(start.spec.selector!.matchExpressions!.at(-1), { key, operator: 'Exists' });
    const template = String(start.spec.next.statusTemplate);
    assert.match(template, /type: Ready/);
    assert.doesNotMatch(template, /status: "True"\n {2}type: Ready/);
    assert.match(template, /PodIPsWith/);
    assert.match(template, /phase: Running/);
  });

  it("refuses defaults without kwok's pod-ready or pod-delete stage", () => {
    assert.throws(
      () => processRunnerStages(defaults.filter((s) => s.metadata.name !== 'pod-delete')),
      /pod-delete/,
    );
  });
});
