import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import type { IncomingAlert } from '../../src/webhook/alertmanager.js';
import {
  gateNode,
  loadRulesFile,
  matchRule,
  OPT_OUT_ANNOTATION,
  parseRules,
  planAlert,
  planPayload,
  selectorMatches,
  type NodeSelector,
} from '../../src/webhook/rules.js';
import { CLUSTER, node, rules } from './helpers.js';

function alert(extra: Partial<IncomingAlert> = {}): IncomingAlert {
  return {
    index: 0,
    alertName: 'GpuXidCritical',
    status: 'firing',
    node: 'gpu-node-1',
    nodeFrom: 'Hostname',
    episodeKey: 'fp@t',
    xid: 79,
    gpu: 3,
    ...extra,
    labels: { alertname: extra.alertName ?? 'GpuXidCritical', severity: 'critical', ...extra.labels },
  };
}

describe('rules file', () => {
  it('applies defaults: active mode, the default label lists, shadow off', () => {
    const r = rules();
    assert.equal(r.mode, 'active');
    assert.ok(r.fields.nodeLabels.includes('Hostname'));
    assert.equal(r.rules[1]?.shadow, false);
  });

  const invalid: [string, unknown, RegExp][] = [
    ['no rules', { rules: [] }, /rules: at least one rule/],
    [
      'an unknown action',
      { rules: [{ name: 'a', match: { alertname: 'X' }, action: 'reboot' }] },
      /rules\.0\.action/,
    ],
    [
      'an unknown key (typo)',
      { rules: [{ name: 'a', match: { alertnme: 'X' }, action: 'ignore' }] },
      /alertnme/,
    ],
    [
      'a policy field of the wrong type',
      {
        rules: [{ name: 'a', match: { alertname: 'X' }, action: 'remediate', policy: { autoReset: 'yes' } }],
      },
      /policy\.autoReset/,
    ],
    [
      'a bad regex',
      { rules: [{ name: 'a', match: { alertname: 'X', labels: { s: { regex: '(' } } }, action: 'ignore' }] },
      /valid regular expression/,
    ],
    [
      'a duplicate rule name',
      {
        rules: [
          { name: 'a', match: { alertname: 'X' }, action: 'ignore' },
          { name: 'a', match: { alertname: 'Y' }, action: 'ignore' },
        ],
      },
      /rule name a is used twice/,
    ],
    [
      'an unknown mode',
      { mode: 'yolo', rules: [{ name: 'a', match: { alertname: 'X' }, action: 'ignore' }] },
      /mode/,
    ],
  ];
  for (const [name, doc, message] of invalid) {
    it(`refuses ${name}, naming where`, () => {
      assert.throws(
        () => parseRules(doc, 'r.yaml'),
        (err: unknown) =>
          err instanceof ConfigError &&
          /invalid rules in r\.yaml/.test(err.message) &&
          message.test(err.message),
      );
    });
  }

  it('loads YAML from a file and says which file is broken', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-rules-'));
    try {
      const file = path.join(dir, 'rules.yaml');
      await fs.writeFile(
        file,
        [
          'mode: shadow',
          'clusterId: prod-a',
          'rollout:',
          '  nodeSelector:',
          '    matchLabels: { pool: h100 }',
          'rules:',
          '  - name: gpu',
          '    match: { alertname: [GpuXidCritical] }',
          '    action: remediate',
          '    policy: { xidOverrides: { "79": needs-operator } }',
        ].join('\n'),
      );
      const r = await loadRulesFile(file);
      assert.equal(r.mode, 'shadow');
      assert.equal(r.clusterId, 'prod-a');
      assert.deepEqual(r.nodeSelector, { matchLabels: { pool: 'h100' } });
      await fs.writeFile(file, 'rules: [');
      await assert.rejects(loadRulesFile(file), /rules\.yaml is not valid YAML/);
      await assert.rejects(loadRulesFile(path.join(dir, 'missing.yaml')), /could not be read/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('rules file: a dropped policy field', () => {
  it('still reads episodeCooldownMs (rules files written before it was dropped) and passes nothing on', () => {
    const r = parseRules(
      {
        rules: [
          {
            name: 'xid',
            match: { alertname: 'GpuXidCritical' },
            action: 'remediate',
            policy: { episodeCooldownMs: 60_000, approvalReminderMs: 60_000 },
          },
        ],
      },
      'r.yaml',
    );
    assert.deepEqual(r.rules[0]!.policy, { approvalReminderMs: 60_000 });
  });
});

describe('rule matching', () => {
  const r = parseRules({
    rules: [
      { name: 'app', match: { alertname: 'GpuXidCritical', xid: [13, 31] }, action: 'ignore' },
      {
        name: 'resolved-only',
        match: { alertname: 'GpuResolvedOnly', status: 'resolved' },
        action: 'remediate',
      },
      {
        name: 'labels',
        match: {
          alertname: ['GpuXidCritical', 'GpuHealth'],
          labels: {
            severity: 'critical',
            cluster: { regex: 'prod-.*' },
            team: { in: ['gpu', 'ml'] },
            env: { notIn: ['dev'] },
            silenced: { exists: false },
          },
        },
        action: 'remediate',
      },
    ],
  });
  const cases: [string, Partial<IncomingAlert>, string | undefined][] = [
    ['an ignored application XID', { xid: 13, labels: { cluster: 'prod-a', team: 'gpu' } }, 'app'],
    ['every label criterion holds', { labels: { cluster: 'prod-a', team: 'ml' } }, 'labels'],
    ['a regex must match the whole value', { labels: { cluster: 'xprod-a', team: 'gpu' } }, undefined],
    ['a value outside `in`', { labels: { cluster: 'prod-a', team: 'web' } }, undefined],
    ['a value in `notIn`', { labels: { cluster: 'prod-a', team: 'gpu', env: 'dev' } }, undefined],
    ['a label that must not exist', { labels: { cluster: 'prod-a', team: 'gpu', silenced: 'y' } }, undefined],
    [
      'an equality that fails',
      { labels: { cluster: 'prod-a', team: 'gpu', severity: 'warning' } },
      undefined,
    ],
    ['an unknown alert name', { alertName: 'DiskFull' }, undefined],
    ['a status criterion', { alertName: 'GpuResolvedOnly', status: 'resolved' }, 'resolved-only'],
    ['a status criterion that fails', { alertName: 'GpuResolvedOnly' }, undefined],
  ];
  for (const [name, extra, expected] of cases) {
    it(name, () => assert.equal(matchRule(r, alert(extra))?.name, expected));
  }
});

describe('node selector', () => {
  const cases: [string, NodeSelector, Record<string, string>, boolean][] = [
    ['empty selector', {}, {}, true],
    ['matchLabels hit', { matchLabels: { pool: 'h100' } }, { pool: 'h100' }, true],
    ['matchLabels miss', { matchLabels: { pool: 'h100' } }, { pool: 'a100' }, false],
    [
      'In',
      { matchExpressions: [{ key: 'pool', operator: 'In', values: ['h100', 'h200'] }] },
      { pool: 'h200' },
      true,
    ],
    [
      'In without the label',
      { matchExpressions: [{ key: 'pool', operator: 'In', values: ['h100'] }] },
      {},
      false,
    ],
    [
      'NotIn',
      { matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['a100'] }] },
      { pool: 'a100' },
      false,
    ],
    [
      'NotIn without the label',
      { matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['a100'] }] },
      {},
      true,
    ],
    ['Exists', { matchExpressions: [{ key: 'canary', operator: 'Exists' }] }, { canary: '' }, true],
    [
      'DoesNotExist',
      { matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] },
      { canary: 'x' },
      false,
    ],
  ];
  for (const [name, selector, labels, expected] of cases) {
    it(name, () => assert.equal(selectorMatches(selector, labels), expected));
  }
});

describe('node gates', () => {
  const r = parseRules({
    rollout: { nodeSelector: { matchLabels: { pool: 'h100' } } },
    rules: [
      {
        name: 'gpu',
        match: { alertname: 'GpuXidCritical' },
        action: 'remediate',
        nodeSelector: { matchExpressions: [{ key: 'canary', operator: 'Exists' }] },
      },
    ],
  });
  const rule = r.rules[0]!;
  const cases: [string, ReturnType<typeof node> | null, string | undefined][] = [
    ['passes a selected node', node('n', { pool: 'h100', canary: 'y' }), undefined],
    ['a node that does not exist', null, 'node-not-found'],
    [
      'the opt-out annotation',
      node('n', { pool: 'h100', canary: 'y' }, { [OPT_OUT_ANNOTATION]: 'true' }),
      'opted-out',
    ],
    [
      'the opt-out annotation with any value but "false"',
      node('n', { pool: 'h100', canary: 'y' }, { [OPT_OUT_ANNOTATION]: '' }),
      'opted-out',
    ],
    [
      'opt-out "false" is no opt-out',
      node('n', { pool: 'h100', canary: 'y' }, { [OPT_OUT_ANNOTATION]: 'false' }),
      undefined,
    ],
    [
      "another cluster's node",
      node('n', { pool: 'h100', canary: 'y', 'fleetmedic.io/cluster': 'other' }),
      'other-cluster',
    ],
    ['the rollout selector', node('n', { pool: 'a100', canary: 'y' }), 'not-selected'],
    ["the rule's selector", node('n', { pool: 'h100' }), 'not-selected'],
  ];
  for (const [name, facts, code] of cases) {
    it(name, () => {
      const gate = gateNode(r, rule, CLUSTER, facts, 'n');
      assert.equal(gate.pass ? undefined : gate.code, code);
      if (!gate.pass) assert.ok(gate.reason.includes('n'), gate.reason);
    });
  }
});

describe('planning (the dry-run)', () => {
  it('plans start-or-join with the rule, the policy and the workflow ID', () => {
    const p = planAlert(rules(), CLUSTER, alert(), node('gpu-node-1'), 'test');
    assert.equal(p.action, 'start-or-join');
    if (p.action !== 'start-or-join') return;
    assert.equal(p.rule, 'gpu-faults');
    assert.equal(p.workflowId, `remediation/${CLUSTER}/gpu-node-1`);
    assert.deepEqual(p.policy, { autoReset: false, diagLevel: 1 });
    assert.deepEqual(p.signal, {
      alertName: 'GpuXidCritical',
      status: 'firing',
      episodeKey: 'fp@t',
      source: 'test',
      xid: 79,
      gpu: 3,
    });
    assert.equal(p.shadow, false);
  });

  it('plans record-resolved for a resolved alert', () => {
    assert.equal(
      planAlert(rules(), CLUSTER, alert({ status: 'resolved' }), node('gpu-node-1'), 't').action,
      'record-resolved',
    );
  });

  it('shadow mode (global or per rule) marks the plan as shadow', () => {
    const global = parseRules({
      mode: 'shadow',
      rules: [{ name: 'a', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
    });
    const perRule = parseRules({
      rules: [{ name: 'a', match: { alertname: 'GpuXidCritical' }, action: 'remediate', shadow: true }],
    });
    for (const r of [global, perRule]) {
      const p = planAlert(r, CLUSTER, alert(), node('gpu-node-1'), 't');
      assert.ok(p.action === 'start-or-join' && p.shadow);
    }
  });

  it('says why an alert is ignored: no rule, or a rule that ignores it', () => {
    const none = planAlert(rules(), CLUSTER, alert({ alertName: 'DiskFull' }), undefined, 't');
    assert.ok(
      none.action === 'ignore' &&
        none.code === 'no-rule' &&
        /no rule matches alert DiskFull/.test(none.reason),
    );
    const app = planAlert(rules(), CLUSTER, alert({ xid: 13 }), undefined, 't');
    assert.ok(app.action === 'ignore' && app.code === 'rule-ignores' && app.rule === 'app-xids');
  });

  it('converts XID overrides from the YAML keys to numbers', () => {
    const r = parseRules({
      rules: [
        {
          name: 'a',
          match: { alertname: 'GpuXidCritical' },
          action: 'remediate',
          policy: { xidOverrides: { '79': 'needs-operator' } },
        },
      ],
    });
    const p = planAlert(r, CLUSTER, alert(), node('gpu-node-1'), 't');
    assert.ok(p.action === 'start-or-join');
    assert.deepEqual(p.policy?.xidOverrides, { 79: 'needs-operator' });
  });

  it('planPayload keeps payload order and reports rejected alerts', () => {
    const plans = planPayload(
      rules(),
      CLUSTER,
      {
        format: 'alertmanager',
        origin: 'x',
        alerts: [alert({ index: 1 })],
        rejected: [{ index: 0, alertName: 'GpuXidCritical', reason: 'no node label' }],
        truncatedAlerts: 0,
      },
      () => node('gpu-node-1'),
      't',
    );
    assert.deepEqual(
      plans.map((p) => [p.index, p.action]),
      [
        [0, 'reject'],
        [1, 'start-or-join'],
      ],
    );
  });
});
