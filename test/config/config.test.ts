import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envVarName, loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_GPU_DAEMONSET_SELECTORS } from '../../src/k8s/gpu-daemonsets.js';

describe('loadConfig', () => {
  it('derives defaults from XDG directories and is frozen', () => {
    const config = loadConfig({ XDG_STATE_HOME: '/s', XDG_CACHE_HOME: '/c' });
    assert.equal(config.stateDir, '/s/fleetmedic');
    assert.equal(config.cacheDir, '/c/fleetmedic');
    assert.equal(config.taskQueue, 'fleetmedic');
    assert.equal(config.clusterId, undefined);
    assert.ok(Object.isFrozen(config));
  });

  it('reads FLEETMEDIC_ variables and lets flags override them', () => {
    const env = { FLEETMEDIC_STATE_DIR: '/from-env', FLEETMEDIC_CLUSTER_ID: 'prod-east' };
    assert.equal(loadConfig(env).stateDir, '/from-env');
    assert.equal(loadConfig(env).clusterId, 'prod-east');
    assert.equal(loadConfig(env, { stateDir: '/from-flag' }).stateDir, '/from-flag');
  });

  const bad: Array<[string, NodeJS.ProcessEnv, Record<string, string>, RegExp]> = [
    [
      'relative state dir',
      { FLEETMEDIC_STATE_DIR: 'rel/dir' },
      {},
      /FLEETMEDIC_STATE_DIR="rel\/dir": expected an absolute path/,
    ],
    [
      'cluster ID with upper case',
      { FLEETMEDIC_CLUSTER_ID: 'Prod' },
      {},
      /FLEETMEDIC_CLUSTER_ID="Prod": expected a DNS label/,
    ],
    [
      'address without port',
      { FLEETMEDIC_TEMPORAL_ADDRESS: 'localhost' },
      {},
      /FLEETMEDIC_TEMPORAL_ADDRESS="localhost": expected host:port/,
    ],
    ['unknown log level', { FLEETMEDIC_LOG_LEVEL: 'loud' }, {}, /FLEETMEDIC_LOG_LEVEL="loud"/],
    [
      'a GPU DaemonSet selector that is not one, naming it',
      { FLEETMEDIC_GPU_DAEMONSET_SELECTORS: 'app=a;app in (b' },
      {},
      /FLEETMEDIC_GPU_DAEMONSET_SELECTORS="app=a;app in \(b": expected label selectors separated by ";" \("app in \(b" is not one/,
    ],
    [
      'GPU DaemonSet selectors that name none',
      { FLEETMEDIC_GPU_DAEMONSET_SELECTORS: ' ; ' },
      {},
      /FLEETMEDIC_GPU_DAEMONSET_SELECTORS=" ; ": expected label selectors separated by ";" \(none given\)/,
    ],
    [
      'a drill reaper interval of 0 s',
      { FLEETMEDIC_DRILL_REAPER_INTERVAL_SECONDS: '0' },
      {},
      /FLEETMEDIC_DRILL_REAPER_INTERVAL_SECONDS="0": expected a whole number of seconds from 1 to 86400/,
    ],
    [
      'bad flag names the flag',
      {},
      { kubeconfig: 'kube.yaml' },
      /flag --kubeconfig="kube.yaml": expected an absolute path/,
    ],
  ];
  for (const [name, env, flags, message] of bad) {
    it(`rejects ${name} with an error naming the variable and value`, () => {
      assert.throws(
        () => loadConfig(env, flags),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  it('reads the GPU DaemonSet selectors separated by ";" (commas belong to a selector), with defaults', () => {
    assert.deepEqual(loadConfig({}).gpuDaemonsetSelectors, DEFAULT_GPU_DAEMONSET_SELECTORS);
    assert.deepEqual(
      loadConfig({ FLEETMEDIC_GPU_DAEMONSET_SELECTORS: 'app=plugin ; tier in (gpu,infer),!canary;' })
        .gpuDaemonsetSelectors,
      ['app=plugin', 'tier in (gpu,infer),!canary'],
    );
  });

  it("reads the drill reaper's interval in seconds, 60 by default", () => {
    assert.equal(loadConfig({}).drillReaperIntervalSeconds, 60);
    assert.equal(
      loadConfig({ FLEETMEDIC_DRILL_REAPER_INTERVAL_SECONDS: '15' }).drillReaperIntervalSeconds,
      15,
    );
  });

  it('maps keys to variable names', () => {
    assert.equal(envVarName('stateDir'), 'FLEETMEDIC_STATE_DIR');
    assert.equal(envVarName('temporalAddress'), 'FLEETMEDIC_TEMPORAL_ADDRESS');
  });
});

describe('Kubernetes and Temporal connection settings', () => {
  const refused: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    [
      'an in-cluster ServiceAccount together with a kubeconfig',
      { FLEETMEDIC_IN_CLUSTER: 'true', FLEETMEDIC_KUBECONFIG: '/k.yaml' },
      /FLEETMEDIC_IN_CLUSTER="true": expected either FLEETMEDIC_IN_CLUSTER=true or FLEETMEDIC_KUBECONFIG/,
    ],
    ['a boolean that is not true or false', { FLEETMEDIC_IN_CLUSTER: 'yes' }, /FLEETMEDIC_IN_CLUSTER="yes"/],
    [
      'a client certificate without its key',
      { FLEETMEDIC_TEMPORAL_TLS_CERT_FILE: '/c.pem' },
      /FLEETMEDIC_TEMPORAL_TLS_KEY_FILE=undefined: expected .*together/,
    ],
    [
      'an API key over plain text',
      { FLEETMEDIC_TEMPORAL_API_KEY: 'sekrit-key' },
      /FLEETMEDIC_TEMPORAL_API_KEY=<redacted>: expected TLS with an API key/,
    ],
  ];
  for (const [name, env, message] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => loadConfig(env),
        (err: Error) =>
          err instanceof ConfigError && message.test(err.message) && !err.message.includes('sekrit'),
      );
    });
  }

  it('reads TLS files and names the variable of one it cannot read', async () => {
    const { temporalTls } = await import('../../src/client/temporal-connection.js');
    assert.equal(temporalTls(loadConfig({})), undefined, 'plain text by default');
    assert.equal(temporalTls(loadConfig({ FLEETMEDIC_TEMPORAL_TLS: 'true' })), true, 'system CAs');
    assert.throws(
      () => temporalTls(loadConfig({ FLEETMEDIC_TEMPORAL_TLS_CA_FILE: '/nonexistent/ca.pem' })),
      /FLEETMEDIC_TEMPORAL_TLS_CA_FILE=\/nonexistent\/ca.pem cannot be read/,
    );
  });

  it('refuses in-cluster credentials outside a pod instead of falling back to anything', async () => {
    const { loadInClusterKubeConfig } = await import('../../src/k8s/kubeconfig.js');
    assert.throws(
      () => loadInClusterKubeConfig({}, '/nonexistent/serviceaccount'),
      (err: Error) =>
        err instanceof ConfigError &&
        /KUBERNETES_SERVICE_HOST is not set/.test(err.message) &&
        /set FLEETMEDIC_KUBECONFIG instead/.test(err.message),
    );
  });
});
