import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envVarName, loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';

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

  it('maps keys to variable names', () => {
    assert.equal(envVarName('stateDir'), 'FLEETMEDIC_STATE_DIR');
    assert.equal(envVarName('temporalAddress'), 'FLEETMEDIC_TEMPORAL_ADDRESS');
  });
});
