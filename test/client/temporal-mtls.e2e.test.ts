import { Connection } from '@temporalio/client';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectionOptions, temporalTls } from '../../src/client/temporal-connection.js';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { loadConfig } from '../../src/config/config.js';
import { MemoryGpuStateStore, withFault, healthyGpuState } from '../../src/sim/gpu-state.js';
import { clearRemediationHistory, clients } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime, temporalServerBinary } from '../helpers/temporal.js';
import { startMtlsTemporal, type MtlsTemporal } from '../helpers/temporal-tls.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

// A real Temporal server (built from go.temporal.io/server) whose frontend requires client
// certificates: the dev server has no TLS flags. fleetmedic's TLS settings are the configuration's
// FLEETMEDIC_TEMPORAL_TLS_* variables, read through the one configuration module.
describe('Temporal over mutual TLS', { timeout: 240_000 }, () => {
  let temporal: MtlsTemporal;
  let stack: TestStack;

  before(async () => {
    stack = await useTestStack();
    temporal = await startMtlsTemporal(await temporalServerBinary());
  });

  after(async () => {
    await temporal?.stop();
  });

  function configured(env: Record<string, string>) {
    // The server's certificate names localhost and 127.0.0.1; the name is checked (an IP as TLS
    // server name is deprecated in Node).
    const config = loadConfig({
      FLEETMEDIC_TEMPORAL_ADDRESS: temporal.address,
      ...(Object.keys(env).length > 0 && { FLEETMEDIC_TEMPORAL_TLS_SERVER_NAME: 'localhost' }),
      ...env,
    });
    const tls = temporalTls(config);
    return connectionOptions({
      address: temporal.address,
      namespace: temporal.namespace,
      ...(tls !== undefined && { tls }),
    });
  }

  async function reaches(options: ReturnType<typeof configured>): Promise<true | string> {
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ ...options, connectTimeout: 5_000 });
      await connection.workflowService.getSystemInfo({});
      return true;
    } catch (err) {
      return (err as Error).message;
    } finally {
      await connection?.close();
    }
  }

  it('refuses a client without a certificate, and one in plain text', async () => {
    const noCert = await reaches(configured({ FLEETMEDIC_TEMPORAL_TLS_CA_FILE: temporal.pki.ca }));
    assert.notEqual(noCert, true, 'a TLS client without a client certificate was let in');
    const plain = await reaches(configured({}));
    assert.notEqual(plain, true, 'a plain-text client was let in');
  });

  it('refuses a server certificate from another CA (the client checks the server)', async () => {
    const wrongCa = await reaches(
      configured({
        FLEETMEDIC_TEMPORAL_TLS_CA_FILE: temporal.pki.clientCert, // a certificate that is no CA of the server's
        FLEETMEDIC_TEMPORAL_TLS_CERT_FILE: temporal.pki.clientCert,
        FLEETMEDIC_TEMPORAL_TLS_KEY_FILE: temporal.pki.clientKey,
      }),
    );
    assert.notEqual(wrongCa, true);
  });

  describe('with the client certificate', () => {
    let workers: RemediationWorkers | undefined;
    const gpus = new MemoryGpuStateStore();

    before(async () => {
      const options = configured({
        FLEETMEDIC_TEMPORAL_TLS_CA_FILE: temporal.pki.ca,
        FLEETMEDIC_TEMPORAL_TLS_CERT_FILE: temporal.pki.clientCert,
        FLEETMEDIC_TEMPORAL_TLS_KEY_FILE: temporal.pki.clientKey,
      });
      assert.equal(await reaches(options), true);
      workers = await startRemediationWorkers(stack, {
        taskQueue: `fleetmedic-mtls-${process.pid}`,
        gpus,
        budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
        temporal: { options, namespace: temporal.namespace },
      });
      await clearRemediationHistory(stack.kc, workers.nodes);
    });

    after(async () => {
      await workers?.stop();
    });

    it('runs a remediation end to end: XID 48 reset, node returned to service', async () => {
      const node = workers!.nodes[0]!;
      await gpus.set(node, withFault(healthyGpuState(node), { gpu: 3, xid: 48, eccUncorrected: 2 }));
      const handle = await startOrJoinRemediation(workers!.client, {
        clusterId: stack.state.clusterId,
        node,
        taskQueue: `fleetmedic-mtls-${process.pid}`,
        alert: xidAlert(48),
        policy: FAST_POLICY,
      });
      const result = await handle.result();
      assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
      assert.equal(result.class, 'reset-gpu');
      const after = await clients(stack.kc).core.readNode({ name: node });
      assert.notEqual(after.spec?.unschedulable, true);
    });
  });
});
