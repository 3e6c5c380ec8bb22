import { AppsV1Api, CoreV1Api, PolicyV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FLEETMEDIC_BIN } from '../../src/cli/bin-path.js';
import { loadConfig } from '../../src/config/config.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { down, up } from '../../src/stack/stack.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';
import type { DrillReport } from '../../src/drill/report.js';
import { startEmbeddedDrill } from '../../src/drill/embedded.js';
import type { StackState } from '../../src/stack/state.js';
import { freeStackPorts } from '../helpers/stack.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { putVerifiedBackup } from '../checkpoint/helpers.js';
import { inferenceOrSkip } from '../inference/llama-server.js';

// The README's main command ends with `fleetmedic drill --llama` and nothing else: on a stack
// `fleetmedic up` started (which runs the process runner), the command starts a control worker of
// its own, backs up the model (with --llama), creates the replicas, starts the gateway, runs the
// drill and cleans up. Stand-ins first, then real llama.cpp replicas, on a stack of this file's own,
// as a user's would be.
const { skip: noLlama } = await inferenceOrSkip();

describe('fleetmedic drill on the embedded stack, with nothing else running', { timeout: 900_000 }, () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  let stateDir: string;
  let state: StackState;
  before(async () => {
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-embedded-'));
    const env = { ...process.env, FLEETMEDIC_STATE_DIR: stateDir, FLEETMEDIC_CLUSTER_ID: undefined };
    const config = loadConfig(env);
    cleanup.push(async () => {
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(stateDir, { recursive: true, force: true });
    });
    ({ state } = await up(config, { nodes: 4, ports: await freeStackPorts(), clusterName: 'drill', runner: true }));
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it('runs the whole drill from the one command: PASS, a report, clean output, nothing left behind', async () => {

    const run = await execa(process.execPath, [FLEETMEDIC_BIN, 'drill', '--drill-id', 'quickstart', '--eviction-slack', '15'], {
      reject: false,
      env: { FLEETMEDIC_STATE_DIR: stateDir },
      extendEnv: true,
      timeout: 420_000,
    });
    process.stderr.write(`fleetmedic drill stdout:\n${run.stdout}\nstderr:\n${run.stderr}\n`);
    {
      // What the failed requests saw (a pass allows a few failed streams), for the next reader.
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
    assert.match(run.stderr, /gateway on http:\/\/127\.0\.0\.1:\d+: a Service in front of 2 gateway pods/);
    // One of the gateway's own pods was evicted too, and judged like the replicas' faults.
    assert.match(run.stdout, /^ {2}gateway-eviction: \d+ requests, \d+ failed, \d+ degraded, continuity /m);
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
    // The fleet budget the drill's drain asked for ended with the command: no worker would serve it.
    const connection = await Connection.connect({ address: state.temporal.address });
    try {
      const budget = await new Client({ connection }).workflow.getHandle(fleetBudgetWorkflowId(state.clusterId)).describe();
      assert.notEqual(budget.status.name, 'RUNNING', `the budget still runs on ${budget.taskQueue}`);
    } finally {
      await connection.close();
    }
  });

  it('a start that fails after it created the workload removes what it created', async () => {
    const kc = loadKubeConfig(state.kube.kubeconfig);
    const lines: string[] = [];
    await assert.rejects(
      startEmbeddedDrill({
        stack: state,
        stateDir,
        kc,
        clusterId: state.clusterId,
        temporal: { address: state.temporal.address, namespace: 'default' },
        taskQueue: 'embedded-failed-start',
        namespace: 'default',
        deployment: 'drill-failed-start',
        drillId: 'failed-start',
        replicas: 2,
        log: (line) => lines.push(line),
        // The gateway pods cannot serve that soon: the start fails after creating everything.
        gatewayReadyTimeoutMs: 0,
      }),
      /the gateway pods of default\/drill-failed-start-gateway were not Ready within 0 s/,
    );
    assert.ok(lines.some((l) => l.includes('creating the gateway Deployment')), lines.join('\n'));
    const left = [
      ...(await kc.makeApiClient(AppsV1Api).listNamespacedDeployment({ namespace: 'default' })).items,
      ...(await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: 'default' })).items,
      ...(await kc.makeApiClient(CoreV1Api).listNamespacedService({ namespace: 'default' })).items,
    ]
      .map((o) => o.metadata!.name!)
      .filter((name) => name.startsWith('drill-failed-start'));
    assert.deepEqual(left, [], 'the failed start left its workload behind');
  });

  it('--llama drills real llama.cpp replicas restored from a checkpoint it backed up and verified first', { skip: noLlama }, async () => {
    const run = await execa(process.execPath, [FLEETMEDIC_BIN, 'drill', '--llama', '--drill-id', 'llama', '--eviction-slack', '15'], {
      reject: false,
      env: { FLEETMEDIC_STATE_DIR: stateDir },
      extendEnv: true,
      timeout: 600_000,
    });
    process.stderr.write(`fleetmedic drill --llama stdout:\n${run.stdout}\nstderr:\n${run.stderr}\n`);
    if (run.exitCode !== 0) {
      // The worker's side of a red run, for its next reader.
      const log = await fs.readFile(path.join(stateDir, 'logs', 'drill.log'), 'utf8').catch(() => '');
      const errors = log.split('\n').filter((l) => /"level":"(WARN|ERROR)"|failed/i.test(l));
      process.stderr.write(`drill.log warnings and errors:\n${errors.slice(-20).join('\n')}\n`);
    }
    assert.match(run.stderr, /backing up and verifying the model into checkpoint store drill-drill-llama/);
    assert.match(run.stderr, /checkpoint \S+: backed up and verified/);
    assert.match(run.stderr, /creating the llama\.cpp Deployment default\/drill-llama/);
    const json = /^\s+(\S+\.json)$/m.exec(run.stdout)?.[1];
    assert.ok(json, 'no report path printed');
    const report = JSON.parse(await fs.readFile(json, 'utf8')) as DrillReport;
    for (const p of report.phases) {
      const steps = p.recovery.map((r) => `${r.step}=+${r.at - p.injectedAt}ms${r.detail ? ` (${r.detail})` : ''}`);
      process.stderr.write(`drill --llama ${p.name}: restore_ms=${p.restoreMs} ${steps.join(' ')}\n`);
    }
    // The replacement of the evicted replica restored the verified checkpoint before it was Ready.
    const eviction = report.phases.find((p) => p.name === 'eviction');
    assert.ok(eviction, 'no eviction phase');
    const at = (step: string) => eviction.recovery.find((r) => r.step === step)?.at;
    assert.ok(eviction.restoreMs !== undefined && eviction.restoreMs > 0, `restore ${eviction.restoreMs}`);
    assert.match(eviction.recovery.find((r) => r.step === 'checkpoint-restored')?.detail ?? '', /checkpoint \S+\.gguf/);
    assert.ok(at('checkpoint-restored')! <= at('health-200')! && at('health-200')! <= at('ready')!, JSON.stringify(eviction.recovery));
    assert.equal(run.exitCode, 0, `exit ${run.exitCode}\n${run.stderr}`);
    assert.match(run.stdout, /^drill llama: PASS/m);
    const kc = loadKubeConfig(state.kube.kubeconfig);
    const nodes = (await kc.makeApiClient(CoreV1Api).listNode()).items;
    assert.deepEqual(nodes.filter((n) => n.spec?.unschedulable).map((n) => n.metadata!.name), [], 'a node left cordoned');
    const deployments = await kc.makeApiClient(AppsV1Api).listNamespacedDeployment({ namespace: 'default' });
    assert.deepEqual(deployments.items.map((d) => d.metadata!.name), []);
  });

  it('a corrupted newest checkpoint: the replacement falls back to the previous verified one, and the report says so', { skip: noLlama }, async () => {
    // The store the previous drill backed up into holds one verified backup. A newer one whose data
    // no longer matches its manifest's sha256 (bit rot, a torn write) goes on top of it.
    const { artifacts } = await inferenceOrSkip();
    const storage = new FilesystemStorage(path.join(stateDir, 'checkpoints', 'drill-drill-llama'));
    const corrupted = await putVerifiedBackup(storage, artifacts!.tinyModel, new Date(), 'gguf');
    const file = storage.describe(corrupted.name);
    const bytes = await fs.readFile(file);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    await fs.writeFile(file, bytes);

    const run = await execa(process.execPath, [FLEETMEDIC_BIN, 'drill', '--llama', '--drill-id', 'corrupted', '--eviction-slack', '15'], {
      reject: false,
      env: { FLEETMEDIC_STATE_DIR: stateDir },
      extendEnv: true,
      timeout: 600_000,
    });
    process.stderr.write(`fleetmedic drill --llama (corrupted newest) stdout:\n${run.stdout}\nstderr:\n${run.stderr}\n`);
    // The newest verified backup's source is the model file: nothing new to back up.
    assert.match(run.stderr, /verified earlier, unchanged/);
    const json = /^\s+(\S+\.json)$/m.exec(run.stdout)?.[1];
    assert.ok(json, 'no report path printed');
    const report = JSON.parse(await fs.readFile(json, 'utf8')) as DrillReport;
    const restored = report.phases
      .find((p) => p.name === 'eviction')
      ?.recovery.find((r) => r.step === 'checkpoint-restored');
    assert.ok(restored, 'no checkpoint-restored step in the eviction');
    assert.match(restored.detail ?? '', new RegExp(`after skipping 1 newer: ${corrupted.name.replace(/\./g, '\\.')} \\(.*sha256`));
    const markdown = await fs.readFile(json.replace(/\.json$/, '.md'), 'utf8');
    assert.ok(markdown.includes(`after skipping 1 newer: ${corrupted.name}`), 'the Markdown report does not say so');
    assert.equal(run.exitCode, 0, `exit ${run.exitCode}\n${run.stderr}`);
  });
}); // prettier-ignore
