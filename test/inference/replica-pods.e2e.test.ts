/**
 * The chart's inference Deployment (rendered with `helm template`, simulation on: the manifest a
 * release installs, as the drill applies it): three real llama.cpp replicas as pods of the embedded
 * cluster, served by the process runner (the
 * replica wrapper: model and slot restored from a checkpoint store before Ready), behind the gateway
 * watching their Deployment. One pod is deleted under a steady open-loop load: no client request
 * fails, and the replacement restores from the newest verified checkpoint before it turns Ready.
 * Skipped, with the reason, without the inference toolchain (`npm run toolchain:inference`).
 */
import type { V1Pod } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { loadConfig } from '../../src/config/config.js';
import { renderInferenceManifest, type InferenceManifest } from '../../src/inference/manifest.js';
import { ProcessRunner } from '../../src/runner/process-runner.js';
import type { ReplicaPhases, RestoreOutcome } from '../../src/runner/replica.js';
import { putVerifiedBackup } from '../checkpoint/helpers.js';
import { clients, eventually, isReady, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { inferenceOrSkip, postJson } from './llama-server.js';

const { artifacts, skip } = await inferenceOrSkip();
const STORE = 'chat-ckpt';

describe('real llama.cpp replica pods behind the gateway (embedded cluster)', { skip, timeout: 300_000 }, () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let stateDir: string;
  let runner: ProcessRunner | undefined;
  let gw: RunningGateway | undefined;
  let manifest: InferenceManifest;
  let app: string;
  const logs: string[] = [];

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmreplicas');
    manifest = await renderInferenceManifest({
      cacheDir: loadConfig().cacheDir,
      namespace: ns.name,
      release: 'e2e',
      replicas: 3,
      preStopSeconds: 2,
      simulation: { model: 'tiny', checkpointStore: STORE },
    });
    app = manifest.deployment.metadata!.name!;
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-replicas-'));
    // The checkpoint store the replicas restore from: one verified backup of the tiny model.
    const storage = new FilesystemStorage(path.join(stateDir, 'checkpoints', STORE));
    await putVerifiedBackup(storage, artifacts!.tinyModel, new Date(), 'gguf');
    runner = new ProcessRunner({
      kc: stack.kc,
      stateDir,
      inference: artifacts,
      log: (message, fields) => logs.push(`${message} ${JSON.stringify(fields ?? {})}`),
    });
    await runner.start();
  });

  after(async () => {
    await gw?.close();
    await runner?.stop();
    const { apps, core } = clients(stack.kc);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns.name }).catch(() => undefined);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns.name, body: { gracePeriodSeconds: 0 } })
        .catch(() => undefined);
    }
    await ns?.remove();
    await fs.rm(stateDir, { recursive: true, force: true });
  });

  /** The Deployment's pods that are not terminating (by its selector: the chart's labels). */
  const replicaPods = async (): Promise<V1Pod[]> => {
    const selector = Object.entries(manifest.deployment.spec!.selector.matchLabels!)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const { items } = await clients(stack.kc).core.listNamespacedPod({ namespace: ns.name, labelSelector: selector });
    return items.filter((p) => !p.metadata?.deletionTimestamp);
  };

  const phasesOf = async (pod: V1Pod): Promise<ReplicaPhases> =>
    (await fetch(`http://${pod.status!.podIP!}:8081/phases`, { signal: AbortSignal.timeout(2_000) }).then((r) =>
      r.json(),
    )) as ReplicaPhases;

  it('fails no client request when a pod is deleted under 20 requests/s; the replacement restores before Ready', async () => {
    const { apps, core, policy } = clients(stack.kc);
    await apps.createNamespacedDeployment({ namespace: ns.name, body: manifest.deployment });
    await core.createNamespacedService({ namespace: ns.name, body: manifest.service });
    await policy.createNamespacedPodDisruptionBudget({ namespace: ns.name, body: manifest.pdb });
    const pods = await eventually(
      '3 Ready replica pods',
      async () => {
        const live = await replicaPods();
        return live.length === 3 && live.every(isReady) ? live : undefined;
      },
      120_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nrunner log:\n${logs.join('\n')}`);
    });
    for (const pod of pods) {
      const phases = await phasesOf(pod);
      assert.equal((phases.checkpoint as RestoreOutcome).attempts.at(-1)?.ok, true, JSON.stringify(phases));
    }

    gw = await startGateway(
      parseGatewayConfig({
        port: 0,
        kube: { namespace: ns.name, deployment: app, kubeconfig: stack.state.kube.kubeconfig, port: 8080 },
        health: { intervalMs: 200 },
        timeouts: { ttfbMs: 10_000, streamIdleMs: 5_000, requestMs: 20_000 },
      }),
    );
    await eventually('the gateway routes to 3 replicas', async () => {
      const res = await fetch(`${gw!.url}/v1/gateway/replicas`);
      const body = (await res.json()) as { replicas: unknown[] };
      return body.replicas.length === 3 ? true : undefined;
    });

    const victim = pods[1]!.metadata!.name!;
    const results: Promise<{ status: number; replica: string | null; error?: string }>[] = [];
    const started = Date.now();
    let deleted = false;
    for (let i = 0; i < 200; i++) {
      // Open loop: request i leaves at i * 50 ms whatever the earlier ones are doing.
      await new Promise((r) => setTimeout(r, Math.max(0, started + i * 50 - Date.now())));
      if (!deleted && Date.now() - started >= 2_000) {
        deleted = true;
        void core.deleteNamespacedPod({ name: victim, namespace: ns.name });
      }
      results.push(
        postJson(`${gw.url}/v1/chat/completions`, {
          messages: [{ role: 'user', content: 'Say hello.' }],
          max_tokens: 4,
        }).then(
          (r) => ({ status: r.status, replica: r.headers.get('x-fleetmedic-replica') }),
          (err: Error) => ({ status: 0, replica: null, error: err.message }),
        ),
      );
    }
    const done = await Promise.all(results);
    const failed = done.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${done.length} requests failed`);
    // The gateway names a discovered replica by its pod.
    const victimName = victim;
    assert.ok(
      done.slice(0, 30).some((r) => r.replica === victimName),
      'the deleted pod served nothing before its deletion',
    );
    assert.ok(
      done.slice(-80).every((r) => r.replica !== victimName),
      'the deleted pod still served 6 s after its deletion',
    );

    // The replacement: Ready only after its model was restored from the store and llama-server was
    // healthy, and it serves.
    const replacement = await eventually(
      'the replacement Ready',
      async () => {
        const live = await replicaPods();
        const fresh = live.find((p) => !pods.some((o) => o.metadata!.name === p.metadata!.name));
        return live.length === 3 && live.every(isReady) && fresh ? fresh : undefined;
      },
      60_000,
    );
    const phases = await phasesOf(replacement);
    assert.ok(
      phases.readyMs !== undefined && phases.health200Ms! <= phases.readyMs && phases.checkpointRestoredMs! <= phases.health200Ms!,
      JSON.stringify(phases),
    );
    process.stderr.write(`# replacement replica phases: ${JSON.stringify(phases)}\n`);
    const answer = await postJson(`http://${replacement.status!.podIP!}:8080/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 4,
    });
    assert.equal(answer.status, 200);
  });
}); // prettier-ignore
