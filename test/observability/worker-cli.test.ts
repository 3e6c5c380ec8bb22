import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { parsePortFlag } from '../../src/observability/setup.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));

describe('observability configuration', () => {
  const bad: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    [
      'a port out of range',
      { FLEETMEDIC_METRICS_PORT: '70000' },
      /FLEETMEDIC_METRICS_PORT="70000": expected a port number/,
    ],
    [
      'a port that is not a number',
      { FLEETMEDIC_METRICS_PORT: 'x' },
      /FLEETMEDIC_METRICS_PORT="x": expected a port number/,
    ],
    [
      'a UI address that is not http(s)',
      { FLEETMEDIC_TEMPORAL_UI_URL: 'ftp://ui' },
      /FLEETMEDIC_TEMPORAL_UI_URL="ftp:\/\/ui": expected an http\(s\) URL/,
    ],
    [
      'a relative notify config',
      { FLEETMEDIC_NOTIFY_CONFIG: 'notify.yaml' },
      /FLEETMEDIC_NOTIFY_CONFIG="notify.yaml": expected an absolute path/,
    ],
  ];
  for (const [what, env, pattern] of bad) {
    it(`refuses ${what}`, () => assert.throws(() => loadConfig(env), pattern));
  }

  it('reads the keys, metrics on loopback by default', () => {
    const config = loadConfig({
      FLEETMEDIC_METRICS_PORT: '9464',
      FLEETMEDIC_TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      FLEETMEDIC_NOTIFY_CONFIG: '/etc/fleetmedic/notify.yaml',
    });
    assert.equal(config.metricsPort, 9464);
    assert.equal(config.metricsHost, '127.0.0.1');
    assert.equal(config.temporalUiUrl, 'http://127.0.0.1:8233');
    assert.equal(config.notifyConfig, '/etc/fleetmedic/notify.yaml');
    assert.equal(loadConfig({}).metricsPort, undefined);
  });

  it('--metrics-port takes 0 to 65535', () => {
    assert.equal(parsePortFlag('0'), 0);
    assert.throws(
      () => parsePortFlag('65536'),
      /--metrics-port must be a port number from 0 to 65535, got "65536"/,
    );
    assert.throws(() => parsePortFlag('-1'), /--metrics-port/);
  });
});

describe('fleetmedic worker --metrics-port --notify-config', () => {
  let stack: TestStack;
  let dir: string;
  before(async () => {
    stack = await useTestStack();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-worker-cli-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const env = () => ({
    ...process.env,
    FLEETMEDIC_STATE_DIR: stack.config.stateDir,
    FLEETMEDIC_TASK_QUEUE: `fleetmedic-worker-cli-${process.pid}`,
    FLEETMEDIC_LOG_LEVEL: 'warn',
  });

  it('refuses a bad sinks file, naming the file and the field', async () => {
    const file = path.join(dir, 'bad.yaml');
    await fs.writeFile(file, 'sinks:\n  - type: slack\n    url: not-a-url\n');
    const run = await execa(process.execPath, [cli, 'worker', '--notify-config', file], {
      env: env(),
      reject: false,
      timeout: 60_000,
    });
    assert.equal(run.exitCode, 1, run.stderr);
    assert.match(run.stderr, /invalid notification config in .*bad\.yaml: sinks\.0\.url: an http\(s\) URL/);
  });

  it('refuses, on a simulated cluster, a sink beyond loopback, naming the sink and only its origin', async () => {
    const file = path.join(dir, 'remote.yaml');
    await fs.writeFile(
      file,
      'sinks:\n  - name: oncall\n    type: slack\n    url: https://hooks.example.com/services/T0/B0/secret\n',
    );
    const run = await execa(process.execPath, [cli, 'worker', '--notify-config', file], {
      env: env(),
      reject: false,
      timeout: 60_000,
    });
    assert.equal(run.exitCode, 1, run.stderr);
    assert.match(
      run.stderr,
      /refusing notification sink "oncall" at https:\/\/hooks\.example\.com: the cluster is a fleetmedic simulation/,
    );
    assert.doesNotMatch(run.stderr, /secret/, 'the sink URL is a credential: only its origin is named');
  });

  it('refuses a bad --metrics-port before connecting anywhere', async () => {
    const run = await execa(process.execPath, [cli, 'worker', '--metrics-port', 'http'], {
      env: env(),
      reject: false,
      timeout: 60_000,
    });
    assert.notEqual(run.exitCode, 0);
    assert.match(run.stderr, /--metrics-port must be a port number from 0 to 65535, got "http"/);
  });

  it('serves /metrics on 127.0.0.1 with the scrape-time gauges, and names its sinks', async () => {
    const file = path.join(dir, 'good.yaml');
    await fs.writeFile(file, 'sinks:\n  - name: oncall\n    type: slack\n    url: http://127.0.0.1:1/hook\n');
    const worker = execa(process.execPath, [cli, 'worker', '--metrics-port', '0', '--notify-config', file], {
      env: env(),
      reject: false,
      timeout: 120_000,
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let seen = '';
        worker.stderr.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          const m = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics; notification sinks: oncall/.exec(seen);
          if (m) resolve(m[1]!);
        });
        void worker.then((r) => reject(new Error(`worker exited ${r.exitCode}: ${seen}`)));
      });
      const text = await (await fetch(`${url}/metrics`)).text();
      assert.match(text, /^fleetmedic_nodes_quarantined \d+$/m);
      assert.match(text, /^fleetmedic_unreachable_agents \d+$/m);
      assert.match(text, /^fleetmedic_fleet_breaker_open \d+$/m);
      assert.match(text, /^# TYPE fleetmedic_phase_duration_seconds histogram$/m);
      assert.match(text, /^process_resident_memory_bytes \d+/m);
    } finally {
      worker.kill('SIGINT');
      await worker;
    }
  });
});
