import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveTargets } from '../../src/cli/context.js';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { writeStackState, type StackState } from '../../src/stack/state.js';

// The Temporal address, kubeconfig and cluster ID come from one source: all from the configuration,
// or all from the embedded stack's record; a kubeconfig of one cluster with another's Temporal or
// cluster ID is refused before anything connects.
describe('resolveTargets: one configuration source, never mixed', () => {
  let dir: string;
  const state: StackState = {
    version: 1,
    clusterName: 'fm',
    clusterId: 'embedded-1',
    nodes: 4,
    startedAt: '2026-12-02T10:00:00.000Z',
    temporal: {
      process: { pid: 1, binary: '/bin/true' },
      address: '127.0.0.1:7233',
      uiUrl: 'http://127.0.0.1:8233',
      port: 7233,
      uiPort: 8233,
      httpPort: 7243,
      metricsPort: 9090,
      namespace: 'default',
      dbFile: '/tmp/db',
      logFile: '/tmp/log',
    },
    kube: {
      workdir: '/tmp/kube',
      kwokctl: '/bin/true',
      kubeconfig: '/tmp/kube/kubeconfig.yaml',
      ports: { apiserver: 1, etcd: 2, etcdPeer: 3, controllerManager: 4, scheduler: 5, kwokController: 6 },
      apiserverUrl: 'https://127.0.0.1:1',
    },
  };

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-targets-'));
    await writeStackState(dir, state);
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  const resolve = (env: NodeJS.ProcessEnv) =>
    resolveTargets(loadConfig({ FLEETMEDIC_STATE_DIR: dir, ...env }));

  it('takes all three from the embedded stack when none is configured', async () => {
    const t = await resolve({});
    assert.deepEqual(
      [t.temporalAddress, t.kubeconfig, t.clusterId, t.embedded],
      ['127.0.0.1:7233', '/tmp/kube/kubeconfig.yaml', 'embedded-1', true],
    );
  });

  it('takes all three from the configuration when all are set', async () => {
    const t = await resolve({
      FLEETMEDIC_TEMPORAL_ADDRESS: 'temporal.example:7233',
      FLEETMEDIC_KUBECONFIG: '/etc/prod.yaml',
      FLEETMEDIC_CLUSTER_ID: 'prod-east',
    });
    assert.deepEqual(
      [t.temporalAddress, t.kubeconfig, t.clusterId, t.embedded],
      ['temporal.example:7233', '/etc/prod.yaml', 'prod-east', false],
    );
    const inCluster = await resolve({
      FLEETMEDIC_TEMPORAL_ADDRESS: 'temporal.example:7233',
      FLEETMEDIC_IN_CLUSTER: 'true',
      FLEETMEDIC_CLUSTER_ID: 'prod-east',
    });
    assert.equal(inCluster.inCluster, true);
    assert.equal(inCluster.kubeconfig, undefined);
  });

  const partial: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    [
      'a kubeconfig alone (the embedded Temporal and cluster ID would go with a real cluster)',
      { FLEETMEDIC_KUBECONFIG: '/etc/prod.yaml' },
      /FLEETMEDIC_KUBECONFIG is set but FLEETMEDIC_TEMPORAL_ADDRESS and FLEETMEDIC_CLUSTER_ID are not/,
    ],
    [
      'a cluster ID alone',
      { FLEETMEDIC_CLUSTER_ID: 'prod-east' },
      /FLEETMEDIC_CLUSTER_ID is set but FLEETMEDIC_TEMPORAL_ADDRESS and FLEETMEDIC_KUBECONFIG .* are not/,
    ],
    [
      'a Temporal address and a kubeconfig without a cluster ID',
      { FLEETMEDIC_TEMPORAL_ADDRESS: 'temporal.example:7233', FLEETMEDIC_KUBECONFIG: '/etc/prod.yaml' },
      /FLEETMEDIC_TEMPORAL_ADDRESS and FLEETMEDIC_KUBECONFIG are set but FLEETMEDIC_CLUSTER_ID is not/,
    ],
  ];
  for (const [what, env, message] of partial) {
    it(`refuses ${what}`, async () => {
      await assert.rejects(
        resolve(env),
        (err: unknown) =>
          err instanceof ConfigError && message.test(err.message) && /never mixed/.test(err.message),
      );
    });
  }

  it('says how to configure when there is neither configuration nor a stack', async () => {
    await assert.rejects(
      resolveTargets(loadConfig({ FLEETMEDIC_STATE_DIR: path.join(dir, 'none') })),
      /set FLEETMEDIC_TEMPORAL_ADDRESS, FLEETMEDIC_KUBECONFIG .* or start the embedded stack/,
    );
  });
});
