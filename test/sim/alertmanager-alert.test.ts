import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertFingerprint, simulatedXidNotification } from '../../src/sim/alertmanager-alert.js';
import { healthyGpuState } from '../../src/sim/gpu-state.js';
import { parseAlertmanagerPayload } from '../../src/webhook/alertmanager.js';
import { fixture } from '../webhook/helpers.js';

type Alerts = { alerts: { labels: Record<string, string>; fingerprint: string }[] };

describe('the Alertmanager notification of a simulated fault', () => {
  it('fingerprints alerts exactly as Alertmanager does (real payloads)', () => {
    for (const name of ['am_v4_firing_admin4j.json', 'am_v4_resolved_pythonwebhook.json']) {
      const { alerts } = fixture(name) as unknown as Alerts;
      for (const a of alerts) assert.equal(alertFingerprint(a.labels), a.fingerprint, name);
    }
  });

  it('carries dcgm-exporter labels and parses into the alert the webhook acts on', () => {
    const gpu = healthyGpuState('gpu-node-2').gpus[3]!;
    const startsAt = new Date('2026-11-27T01:02:03.456Z');
    const body = simulatedXidNotification({ node: 'gpu-node-2', gpu, xid: 79, startsAt });
    const alert = body.alerts[0]!;
    assert.equal(body.version, '4');
    assert.equal(
      body.groupKey,
      '{}/{severity="critical"}:{Hostname="gpu-node-2", alertname="GpuXidCritical"}',
    );
    assert.deepEqual(
      [alert.labels.Hostname, alert.labels.gpu, alert.labels.UUID, alert.labels.xid, alert.labels.modelName],
      ['gpu-node-2', '3', gpu.uuid, '79', 'NVIDIA H100 80GB HBM3'],
    );
    assert.equal(alert.fingerprint, alertFingerprint(alert.labels));
    assert.equal(alert.startsAt, '2026-11-27T01:02:03.456Z');

    const parsed = parseAlertmanagerPayload(JSON.parse(JSON.stringify(body)));
    assert.ok(parsed.ok);
    const [incoming] = parsed.payload.alerts;
    assert.deepEqual(
      [incoming?.node, incoming?.xid, incoming?.gpu, incoming?.status, incoming?.alertName, incoming?.pods],
      ['gpu-node-2', 79, 3, 'firing', 'GpuXidCritical', undefined],
    );
    assert.equal(incoming?.episodeKey, `${alert.fingerprint}@${alert.startsAt}`);
  });

  it('a fault without an XID is a DCGM health failure', () => {
    const gpu = healthyGpuState('gpu-node-1').gpus[0]!;
    const body = simulatedXidNotification({
      node: 'gpu-node-1',
      gpu,
      dcgmCode: 'DCGM_FR_ROW_REMAP_FAILURE',
      startsAt: new Date(),
    });
    const parsed = parseAlertmanagerPayload(body);
    assert.ok(parsed.ok);
    assert.deepEqual(
      [
        parsed.payload.alerts[0]?.alertName,
        parsed.payload.alerts[0]?.dcgmCode,
        parsed.payload.alerts[0]?.xid,
      ],
      ['GpuHealthFailure', 'DCGM_FR_ROW_REMAP_FAILURE', undefined],
    );
  });
});
