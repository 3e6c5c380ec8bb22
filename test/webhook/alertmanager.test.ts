import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_ALERT_FIELDS,
  detectFormat,
  isKubernetesName,
  labelsHash,
  parseAlertmanagerPayload,
  parseGenericPayload,
  type ParseResult,
} from '../../src/webhook/alertmanager.js';
import { fixture, xidPayload } from './helpers.js';

function ok(r: ParseResult) {
  if (!r.ok) assert.fail(`expected a valid payload, got: ${r.error}`);
  return r.payload;
}

function amAlert(labels: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    version: '4',
    alerts: [{ status: 'firing', labels: { alertname: 'GpuXidCritical', ...labels }, ...extra }],
  };
}

describe('Alertmanager v4 parsing', () => {
  it('reads node, GPU, XID and the episode from the SYNTHETIC dcgm-exporter fixture', () => {
    const p = ok(parseAlertmanagerPayload(fixture('SYNTHETIC_am_v4_gpu_xid_firing.json')));
    assert.equal(p.format, 'alertmanager');
    assert.equal(p.origin, 'alertmanager:gpu-remediator');
    assert.deepEqual(p.rejected, []);
    const [a] = p.alerts;
    assert.ok(a);
    assert.equal(a.alertName, 'GpuXidCritical');
    assert.equal(a.status, 'firing');
    assert.equal(a.node, 'gpu-node-07');
    assert.equal(a.nodeFrom, 'Hostname');
    assert.equal(a.xid, 79);
    assert.equal(a.gpu, 3);
    assert.equal(a.episodeKey, '3b1f0c9d2e4a5b6c@2026-03-01T12:42:15.123456789Z');
    // The unprefixed pod label is dcgm-exporter's own pod (target label), not a workload.
    assert.equal(a.pods, undefined);
  });

  it('reads status, not endsAt: a resolved alert is resolved, a firing one with a past endsAt still fires', () => {
    const resolved = ok(parseAlertmanagerPayload(fixture('am_v4_resolved_pythonwebhook.json')));
    assert.equal(resolved.rejected.length, 1, 'the sample has no node label');
    const firing = ok(parseAlertmanagerPayload(amAlert({ node: 'n1' }, { endsAt: '2020-01-01T00:00:00Z' })));
    assert.equal(firing.alerts[0]?.status, 'firing');
    const res = ok(
      parseAlertmanagerPayload({
        alerts: [
          { status: 'resolved', labels: { alertname: 'X', node: 'n1' }, endsAt: '0001-01-01T00:00:00Z' },
        ],
      }),
    );
    assert.equal(res.alerts[0]?.status, 'resolved');
  });

  it('ignores unknown fields (truncatedAlerts, notification_reason, routeLabels)', () => {
    const body = {
      ...xidPayload('gpu-node-1'),
      notification_reason: 'repeat',
      routeLabels: { team: 'gpu' },
      somethingNew: [1, 2, 3],
    };
    (body.alerts[0] as Record<string, unknown>).extra = { nested: true };
    const p = ok(parseAlertmanagerPayload(body));
    assert.equal(p.alerts[0]?.node, 'gpu-node-1');
  });

  const nodeLabels: [string, Record<string, string>, string][] = [
    ['Hostname (released dcgm-exporter)', { Hostname: 'a' }, 'a'],
    ['hostname (newer dcgm-exporter)', { hostname: 'b' }, 'b'],
    ['node', { node: 'c' }, 'c'],
    ['kubernetes_node', { kubernetes_node: 'd' }, 'd'],
    ['exported_Hostname', { exported_Hostname: 'e' }, 'e'],
    ['exported_hostname', { exported_hostname: 'f' }, 'f'],
    ['exported_node', { exported_node: 'g' }, 'g'],
    ['exported_kubernetes_node', { exported_kubernetes_node: 'h' }, 'h'],
    ['Hostname wins over node', { node: 'x', Hostname: 'y' }, 'y'],
    ['an empty label is skipped', { Hostname: '', node: 'z' }, 'z'],
  ];
  for (const [name, labels, expected] of nodeLabels) {
    it(`node label: ${name}`, () => {
      assert.equal(ok(parseAlertmanagerPayload(amAlert(labels))).alerts[0]?.node, expected);
    });
  }

  it('takes the node label list from the options', () => {
    const fields = { ...DEFAULT_ALERT_FIELDS, nodeLabels: ['instance_node'] };
    const p = ok(parseAlertmanagerPayload(amAlert({ instance_node: 'n9', Hostname: 'other' }), fields));
    assert.equal(p.alerts[0]?.node, 'n9');
  });

  const xids: [string, Record<string, string>, Record<string, string>, number | undefined][] = [
    ['xid label', { xid: '48' }, {}, 48],
    ['err_code label', { err_code: '79' }, {}, 79],
    ['DCGM_FI_DEV_XID_ERRORS label (gauge value)', { DCGM_FI_DEV_XID_ERRORS: '94' }, {}, 94],
    ['$value rendered as a float', { xid: '79.0' }, {}, 79],
    ['xid annotation', {}, { xid: '62' }, 62],
    ['no XID at all', {}, {}, undefined],
  ];
  for (const [name, labels, annotations, expected] of xids) {
    it(`XID from the ${name}`, () => {
      const p = ok(parseAlertmanagerPayload(amAlert({ node: 'n1', ...labels }, { annotations })));
      assert.equal(p.alerts[0]?.xid, expected);
    });
  }

  it('reads a DCGM health code', () => {
    const p = ok(
      parseAlertmanagerPayload(amAlert({ node: 'n1', dcgm_code: 'DCGM_FR_VOLATILE_DBE_DETECTED' })),
    );
    assert.equal(p.alerts[0]?.dcgmCode, 'DCGM_FR_VOLATILE_DBE_DETECTED');
  });

  it('takes workload pods from exported_pod / exported_namespace, and pod / namespace unless it is the exporter', () => {
    const exported = ok(
      parseAlertmanagerPayload(
        amAlert({
          node: 'n1',
          exported_pod: 'llm-0',
          exported_namespace: 'serving',
          pod: 'nvidia-dcgm-exporter-x',
          namespace: 'gpu-operator',
        }),
      ),
    );
    assert.deepEqual(exported.alerts[0]?.pods, [{ namespace: 'serving', name: 'llm-0' }]);
    const honorLabels = ok(
      parseAlertmanagerPayload(amAlert({ node: 'n1', pod: 'llm-1', namespace: 'serving' })),
    );
    assert.deepEqual(honorLabels.alerts[0]?.pods, [{ namespace: 'serving', name: 'llm-1' }]);
  });

  it('falls back to a hash of the sorted labels when there is no fingerprint', () => {
    const labels = { alertname: 'GpuNeedsReset', node: 'test-node', pci_bdf: '01:00.0' };
    const p = ok(parseAlertmanagerPayload(fixture('intel_gpu_taint-1.json')));
    assert.equal(p.alerts[0]?.node, 'test-node');
    assert.equal(p.alerts[0]?.episodeKey, `${labelsHash({ ...labels, pci_dev: '0x56a0' })}@unknown-start`);
    assert.equal(labelsHash({ b: '1', a: '2' }), labelsHash({ a: '2', b: '1' }));
    const withStart = ok(
      parseAlertmanagerPayload(amAlert({ node: 'n1' }, { startsAt: '2026-01-01T00:00:00Z' })),
    );
    assert.match(withStart.alerts[0]?.episodeKey ?? '', /^[0-9a-f]{16}@2026-01-01T00:00:00Z$/);
  });

  it('rejects an alert without a node label, with the labels it looked for, and keeps the others', () => {
    const body = {
      alerts: [
        { status: 'firing', labels: { alertname: 'GpuXidCritical', instance: '10.0.0.1:9400' } },
        { status: 'firing', labels: { alertname: 'GpuXidCritical', Hostname: 'gpu-node-1' } },
      ],
    };
    const p = ok(parseAlertmanagerPayload(body));
    assert.equal(p.alerts.length, 1);
    assert.equal(p.rejected[0]?.index, 0);
    assert.match(p.rejected[0]?.reason ?? '', /no node label: expected one of Hostname, hostname/);
  });

  const badAlerts: [string, Record<string, string>, RegExp][] = [
    [
      'a node name that is not a Kubernetes name',
      { Hostname: 'GPU NODE 7!' },
      /not a valid Kubernetes node name/,
    ],
    ['an XID that is not a number', { node: 'n1', xid: 'seventy-nine' }, /xid="seventy-nine" is not an XID/],
    ['a GPU index that is not a number', { node: 'n1', gpu: '-1' }, /gpu="-1" is not a GPU index/],
  ];
  for (const [name, labels, reason] of badAlerts) {
    it(`rejects ${name}`, () => {
      const p = ok(parseAlertmanagerPayload(amAlert(labels)));
      assert.equal(p.alerts.length, 0);
      assert.match(p.rejected[0]?.reason ?? '', reason);
    });
  }

  it('rejects an alert without alertname', () => {
    const p = ok(parseAlertmanagerPayload({ alerts: [{ status: 'firing', labels: { node: 'n1' } }] }));
    assert.match(p.rejected[0]?.reason ?? '', /no alertname label/);
  });

  const schemaErrors: [string, unknown, RegExp][] = [
    ['not an object', [1, 2], /\(payload\)/],
    ['no alerts', { version: '4' }, /alerts: /],
    ['an empty alerts list', { alerts: [] }, /at least one alert/],
    [
      'a label that is a number',
      amAlert({ node: 'n1' }, { labels: { alertname: 'X', gpu: 3 } }),
      /alerts\[0\]\.labels\.gpu/,
    ],
    [
      'a status that is neither firing nor resolved',
      amAlert({ node: 'n1' }, { status: 'pending' }),
      /alerts\[0\]\.status/,
    ],
    ['another webhook version', { ...amAlert({ node: 'n1' }), version: '3' }, /version must be "4"/],
    [
      'a startsAt that is not a time',
      amAlert({ node: 'n1' }, { startsAt: 'yesterday' }),
      /startsAt: .*RFC 3339/,
    ],
  ];
  for (const [name, body, message] of schemaErrors) {
    it(`refuses the payload with ${name}, saying where`, () => {
      const r = parseAlertmanagerPayload(body);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.match(r.error, message);
        assert.ok(r.issues.length > 0);
      }
    });
  }
});

describe('generic alert form', () => {
  it('parses alerts that name their node, with labels for rule matching', () => {
    const p = ok(
      parseGenericPayload({
        source: 'my-monitor',
        alerts: [
          {
            alertName: 'GpuXidError',
            node: 'gpu-node-1',
            xid: 48,
            gpu: 2,
            episodeKey: 'evt-1',
            labels: { severity: 'critical' },
          },
          { alertName: 'GpuHealth', status: 'resolved', node: 'gpu-node-2', dcgmCode: 'DCGM_FR_NVLINK_DOWN' },
        ],
      }),
    );
    assert.equal(p.origin, 'generic:my-monitor');
    assert.deepEqual(
      p.alerts.map((a) => [a.alertName, a.status, a.node, a.xid, a.gpu, a.episodeKey, a.labels.severity]),
      [
        ['GpuXidError', 'firing', 'gpu-node-1', 48, 2, 'evt-1', 'critical'],
        ['GpuHealth', 'resolved', 'gpu-node-2', undefined, undefined, p.alerts[1]?.episodeKey, undefined],
      ],
    );
    assert.equal(p.alerts[1]?.labels.alertname, 'GpuHealth');
    assert.match(p.alerts[1]?.episodeKey ?? '', /^[0-9a-f]{16}@unknown-start$/);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a missing node', { alerts: [{ alertName: 'X' }] }, /alerts\[0\]\.node/],
    [
      'a node that is not a Kubernetes name',
      { alerts: [{ alertName: 'X', node: 'Bad_Node' }] },
      /Kubernetes name/,
    ],
    ['an XID given as a string', { alerts: [{ alertName: 'X', node: 'n', xid: '79' }] }, /alerts\[0\]\.xid/],
    ['a negative GPU', { alerts: [{ alertName: 'X', node: 'n', gpu: -1 }] }, /alerts\[0\]\.gpu/],
  ];
  for (const [name, body, message] of bad) {
    it(`refuses ${name}`, () => {
      const r = parseGenericPayload(body);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error, message);
    });
  }
});

describe('helpers', () => {
  it('isKubernetesName accepts DNS-1123 subdomains only', () => {
    for (const good of ['gpu-node-7', 'ip-10-0-4-17.ec2.internal', 'a'])
      assert.ok(isKubernetesName(good), good);
    for (const bad of ['', 'Gpu', '-a', 'a-', 'a..b', 'a_b', 'x'.repeat(254)])
      assert.ok(!isKubernetesName(bad), bad);
  });

  it('detectFormat tells Alertmanager payloads from the generic form', () => {
    assert.equal(detectFormat(fixture('SYNTHETIC_am_v4_gpu_xid_firing.json')), 'alertmanager');
    assert.equal(detectFormat(fixture('intel_gpu_taint-1.json')), 'alertmanager');
    assert.equal(detectFormat({ alerts: [{ alertName: 'X', node: 'n' }] }), 'generic');
  });
});
