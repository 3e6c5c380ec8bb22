import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FLEETMEDIC_BIN } from '../../src/cli/bin-path.js';
import { loadConfig } from '../../src/config/config.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { down, up } from '../../src/stack/stack.js';
import { freeStackPorts } from '../helpers/stack.js';

// The README's main command ends with `fleetmedic drill` and nothing else: on a stack `fleetmedic up`
// started (which runs the process runner), the command creates the stand-in replicas, starts the
// gateway and a control worker of its own, runs the drill and cleans up. A stack of this file's own,
// as a user's would be.
describe('fleetmedic drill on the embedded stack, with nothing else running', { timeout: 600_000 }, () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it('runs the whole drill from the one command: PASS, a report, clean output, nothing left behind', async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-embedded-'));
    const env = { ...process.env, FLEETMEDIC_STATE_DIR: stateDir, FLEETMEDIC_CLUSTER_ID: undefined };
    const config = loadConfig(env);
    cleanup.push(async () => {
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(stateDir, { recursive: true, force: true });
    });
    const { state } = await up(config, { nodes: 4, ports: await freeStackPorts(), clusterName: 'drill', runner: true });

    const run = await execa(process.execPath, [FLEETMEDIC_BIN, 'drill', '--drill-id', 'quickstart', '--eviction-slack', '15'], {
      reject: false,
      env: { FLEETMEDIC_STATE_DIR: stateDir },
      extendEnv: true,
      timeout: 420_000,
    });
    process.stderr.write(`fleetmedic drill stdout:\n${run.stdout}\nstderr:\n${run.stderr}\n`);
    if (run.exitCode !== 0) {
      // What the failed requests saw, for the next reader of a red run.
      const probe = await fs.readFile(path.join(stateDir, 'drills', 'quickstart', 'probe.jsonl'), 'utf8').catch(() => '');
      const errors = new Map<string, number>();
      for (const line of probe.split('\n').filter(Boolean)) {
        const r = JSON.parse(line) as { ok: boolean; error?: string; replica?: string | null };
        if (!r.ok) errors.set(`${r.replica ?? '-'}: ${r.error}`, (errors.get(`${r.replica ?? '-'}: ${r.error}`) ?? 0) + 1);
      }
      process.stderr.write(`probe failures: ${JSON.stringify([...errors])}\n`);
    }
    assert.equal(run.exitCode, 0, `exit ${run.exitCode}\n${run.stderr}`);
    assert.match(run.stdout, /^drill quickstart: PASS/m);
    assert.match(run.stderr, /creating the stand-in Deployment default\/drill-standin/);
    assert.match(run.stderr, /gateway on http:\/\/127\.0\.0\.1:\d+/);
    // What a person reads: progress lines, never JSON log lines of the worker or the SDK.
    for (const line of [...run.stdout.split('\n'), ...run.stderr.split('\n')]) {
      assert.doesNotMatch(line, /^\s*\{/, `a log line in the output: ${line}`);
    }
    const md = /^report: (\S+\.md)$/m.exec(run.stdout)?.[1];
    assert.ok(md && (await fs.stat(md)).size > 0, 'no report path printed');
    assert.ok(md.startsWith(path.join(stateDir, 'drills')), md);

    // Nothing left: no node cordoned, the stand-ins removed.
    const kc = loadKubeConfig(state.kube.kubeconfig);
    const nodes = (await kc.makeApiClient(CoreV1Api).listNode()).items;
    assert.deepEqual(
      nodes.filter((n) => n.spec?.unschedulable).map((n) => n.metadata!.name),
      [],
      'a node left cordoned',
    );
    const deployments = await kc.makeApiClient(AppsV1Api).listNamespacedDeployment({ namespace: 'default' });
    assert.deepEqual(
      deployments.items.map((d) => d.metadata!.name),
      [],
    );
  });
}); // prettier-ignore
