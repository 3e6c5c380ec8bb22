import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createConfiguration,
  KubeConfig,
  RbacAuthorizationV1Api,
  ServerConfiguration,
  wrapHttpLibrary,
  type ApiConstructor,
  type ApiType,
  type RequestContext,
} from '@kubernetes/client-node';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import {
  createKubernetesActivities,
  createQuarantineSteps,
  type DrainNodeInput,
  type DrainNodeResult,
  type DrainProgress,
  type KubernetesActivities,
  type RestartPodsResult,
} from '../../src/activities/kubernetes/index.js';
import { isApiError } from '../../src/k8s/api-errors.js';
import { SIMULATED_LABEL } from '../../src/k8s/labels.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { mergePatch } from '../../src/k8s/patch.js';
import {
  CORDON_ANNOTATION,
  QUARANTINED_LABEL,
  QUARANTINE_TAINT_KEY,
  REMEDIATIONS_ANNOTATION,
} from '../../src/k8s/remediation-labels.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { clients, deployment, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { startTestStack, TEST_STACK_ENV, useTestStack, type TestStack } from '../helpers/stack.js';

// Against the real control plane of the embedded stack (kube-apiserver with RBAC, the disruption,
// ReplicaSet and node-lifecycle controllers, the scheduler, kwok nodes): no fakes. Nodes are shared
// with other test files, so every test snapshots the node it changes and restores it in `finally`.

/**
 * Taints (`node.kubernetes.io/unschedulable`, `.../not-ready`...) and labels (`beta.kubernetes.io/os`...)
 * that the node-lifecycle controller manages on its own schedule: snapshots ignore them.
 */
const CONTROLLER_TAINT_PREFIX = 'node.kubernetes.io/';
const CONTROLLER_LABEL_PREFIX = 'beta.kubernetes.io/';

/** One API call as the server answered it. */
interface Call {
  method: string;
  url: string;
  body: string;
  status: number;
}

/**
 * A KubeConfig that records every API call with its response status and can act just before a call is
 * sent: to count evictions by pod UID, and to change a node between an activity's read and its write.
 */
class RecordingKubeConfig extends KubeConfig {
  readonly calls: Call[] = [];
  beforeSend: ((req: RequestContext) => Promise<void>) | undefined;

  constructor(from: KubeConfig) {
    super();
    this.loadFromOptions({
      clusters: from.clusters,
      users: from.users,
      contexts: from.contexts,
      currentContext: from.currentContext,
    });
  }

  override makeApiClient<T extends ApiType>(apiClientType: ApiConstructor<T>): T {
    const cluster = this.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster');
    const inner = createConfiguration().httpApi;
    const httpApi = wrapHttpLibrary({
      send: async (req) => {
        await this.beforeSend?.(req);
        const resp = await inner.send(req).toPromise();
        const body = req.getBody();
        this.calls.push({
          method: req.getHttpMethod(),
          url: req.getUrl(),
          body: typeof body === 'string' ? body : '',
          status: resp.httpStatusCode,
        });
        return resp;
      },
    });
    return new apiClientType(
      createConfiguration({
        baseServer: new ServerConfiguration(cluster.server, {}),
        authMethods: { default: this },
        httpApi,
      }),
    );
  }

  /** Accepted evictions, as pod UIDs (one entry per accepted eviction). */
  acceptedEvictions(): string[] {
    return this.evictionCalls()
      .filter((c) => c.status >= 200 && c.status < 300)
      .map((c) => c.uid);
  }

  evictionCalls(): { uid: string; status: number }[] {
    return this.calls
      .filter((c) => c.method === 'POST' && /\/pods\/[^/]+\/eviction$/.test(new URL(c.url).pathname))
      .map((c) => {
        const body = JSON.parse(c.body) as { deleteOptions?: { preconditions?: { uid?: string } } };
        return { uid: body.deleteOptions?.preconditions?.uid ?? '(none)', status: c.status };
      });
  }
}

interface NodeSnapshot {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  unschedulable: boolean;
  taints: { key: string; value?: string; effect: string }[];
}

function isFailure(type: string, nonRetryable = true) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, nonRetryable);
    return true;
  };
}

describe('Kubernetes activities against the embedded cluster', () => {
  let stack: TestStack;
  let acts: KubernetesActivities;
  let rkc: RecordingKubeConfig;
  /** Simulated nodes, by name. */
  let nodes: string[];

  let stopStack: (() => Promise<void>) | undefined;

  before(async () => {
    if (process.env[TEST_STACK_ENV]) {
      stack = await useTestStack();
    } else {
      // Not useTestStack(): on Node 20 the after(stop) it registers from inside this before hook runs
      // as soon as the hook ends, tearing the stack down before the first test.
      const started = await startTestStack();
      stack = started.stack;
      stopStack = started.stop;
    }
    rkc = new RecordingKubeConfig(stack.kc);
    acts = createKubernetesActivities({
      kc: rkc,
      clusterId: stack.state.clusterId,
      pollIntervalMs: 250,
      apiClient: (api) => rkc.makeApiClient(api),
    });
    const { core } = clients(stack.kc);
    nodes = (await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` })).items
      .map((n) => n.metadata!.name!)
      .sort();
    assert.ok(nodes.length >= 4, `need 4 simulated nodes, have ${nodes.length}`);
    // A fresh stack's nodes are still being initialised (not-ready taint) when `up` returns.
    await eventually(
      'simulated nodes Ready without a not-ready taint',
      async () => {
        const list = (await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` })).items;
        const settled = list.every(
          (n) =>
            n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
            !(n.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready'),
        );
        return settled ? true : undefined;
      },
      60_000,
    );
  });

  async function snapshot(name: string): Promise<NodeSnapshot> {
    const { core } = clients(stack.kc);
    const node = await core.readNode({ name });
    return {
      labels: Object.fromEntries(
        Object.entries(node.metadata?.labels ?? {}).filter(
          ([key]) => !key.startsWith(CONTROLLER_LABEL_PREFIX),
        ),
      ),
      // Only fleetmedic's: controllers and kwok keep annotating nodes on their own schedule.
      annotations: Object.fromEntries(
        Object.entries(node.metadata?.annotations ?? {}).filter(([key]) => key.startsWith('fleetmedic.io/')),
      ),
      unschedulable: node.spec?.unschedulable === true,
      taints: (node.spec?.taints ?? [])
        .filter((t) => !t.key.startsWith(CONTROLLER_TAINT_PREFIX))
        .map((t) => ({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect })),
    };
  }

  /** Puts back what tests change on a node: fleetmedic's marks, fmtest labels, the cordon. */
  async function restore(name: string, snap: NodeSnapshot): Promise<void> {
    const { core } = clients(stack.kc);
    for (let attempt = 0; ; attempt++) {
      const node = await core.readNode({ name });
      const labels: Record<string, string | null> = {};
      for (const key of Object.keys(node.metadata?.labels ?? {})) {
        if ((key === QUARANTINED_LABEL || key.startsWith('fmtest')) && !(key in snap.labels))
          labels[key] = null;
      }
      const annotations: Record<string, string | null> = {};
      for (const key of [CORDON_ANNOTATION, REMEDIATIONS_ANNOTATION])
        annotations[key] = snap.annotations[key] ?? null;
      const taints = (node.spec?.taints ?? [])
        .filter((t) => t.key !== QUARANTINE_TAINT_KEY || snap.taints.some((s) => s.key === t.key))
        .map((t) => ({ key: t.key, value: t.value, effect: t.effect, timeAdded: t.timeAdded }));
      try {
        await core.patchNode(
          {
            name,
            body: {
              metadata: { resourceVersion: node.metadata?.resourceVersion, labels, annotations },
              spec: { unschedulable: snap.unschedulable, taints: taints.length ? taints : null },
            },
          },
          mergePatch,
        );
        return;
      } catch (err) {
        if (!isApiError(err, 409) || attempt > 5) throw err;
      }
    }
  }

  /** Waits until the node looks exactly as in `snap` (the controller's own taint aside). */
  async function assertRestored(name: string, snap: NodeSnapshot): Promise<void> {
    let last: NodeSnapshot | undefined;
    try {
      await eventually(
        `node ${name} restored`,
        async () => {
          last = await snapshot(name);
          try {
            assert.deepEqual(last, snap);
            return true;
          } catch {
            return undefined;
          }
        },
        10_000,
      );
    } catch {
      assert.deepEqual(last, snap, `node ${name} is not as before`);
    }
  }

  /**
   * Deletes a test namespace and waits for its pods to be gone: the next test drains the same node, and
   * a leftover pod (an unmanaged one, say) would change what that drain sees.
   */
  async function dropNamespace(ns: { name: string; remove: () => Promise<void> }): Promise<void> {
    await ns.remove();
    const { core } = clients(stack.kc);
    await eventually(`pods of ${ns.name} gone`, async () =>
      (await core.listNamespacedPod({ namespace: ns.name })).items.length === 0 ? true : undefined,
    );
  }

  /**
   * Runs `fn` with a fresh namespace, `nodes[2]` as the node to drain and `nodes[0..1]` as spares,
   * then restores the three nodes and drops the namespace, whatever `fn` did.
   */
  async function drainScene(
    prefix: string,
    fn: (scene: {
      ns: { name: string; remove: () => Promise<void> };
      target: string;
      others: string[];
    }) => Promise<void>,
  ): Promise<void> {
    const ns = await tempNamespace(stack.kc, prefix);
    const target = nodes[2]!;
    const others = [nodes[0]!, nodes[1]!];
    const snaps = new Map(
      await Promise.all([target, ...others].map(async (n) => [n, await snapshot(n)] as const)),
    );
    try {
      await fn({ ns, target, others });
    } finally {
      for (const [n, snap] of snaps) await restore(n, snap);
      await dropNamespace(ns);
    }
  }

  /** Runs a drain in a fresh mock activity context, collecting its heartbeats. */
  function drain(input: DrainNodeInput, heartbeatDetails?: DrainProgress) {
    const env = new MockActivityEnvironment(heartbeatDetails ? { heartbeatDetails } : {});
    const beats: DrainProgress[] = [];
    env.on('heartbeat', (d: DrainProgress) => beats.push(d));
    const result: Promise<DrainNodeResult> = env.run(acts.drainNode, input);
    result.catch(() => {}); // observed by the test; avoid an unhandled rejection while it waits
    return { env, beats, result };
  }

  /**
   * A Deployment of `replicas` pods placed on `target` only (through a label only it carries yet),
   * with a PDB; `spread` then labels the other pool nodes so replacements have somewhere to go.
   */
  async function workloadOn(
    ns: string,
    target: string,
    name: string,
    replicas: number,
    pdb: { maxUnavailable: number } | { minAvailable: number },
  ) {
    const { apps, core, policy } = clients(stack.kc);
    const poolLabel = `fmtest/${ns}`;
    await core.patchNode(
      { name: target, body: { metadata: { labels: { [poolLabel]: 'pool' } } } },
      mergePatch,
    );
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: deployment(name, replicas, { nodeSelector: { [poolLabel]: 'pool' } }),
    });
    const pods = await eventually(`${replicas} Ready replicas on ${target}`, async () => {
      const live = await livePods(stack.kc, ns, name);
      return live.length === replicas && live.every(isReady) && live.every((p) => p.spec?.nodeName === target)
        ? live
        : undefined;
    });
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns,
      body: { metadata: { name }, spec: { ...pdb, selector: { matchLabels: { app: name } } } },
    });
    await eventually('the PDB to observe the replicas', async () => {
      const p = await policy.readNamespacedPodDisruptionBudget({ name, namespace: ns });
      return p.status?.currentHealthy === replicas && (p.status.observedGeneration ?? 0) >= 1 ? p : undefined;
    });
    return {
      pods,
      poolLabel,
      spread: async (others: string[]) => {
        for (const other of others) {
          await core.patchNode(
            { name: other, body: { metadata: { labels: { [poolLabel]: 'pool' } } } },
            mergePatch,
          );
        }
      },
    };
  }

  it('quarantines (label, NoSchedule taint, cordon, record) and releases back to exactly the state before', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      const q = await acts.quarantineNode({ node: name, workflowId: 'wf-roundtrip', reason: 'XID 79' });
      assert.equal(q.changed, true);
      assert.equal(q.record.preexistingCordon, false);
      const { core } = clients(stack.kc);
      const node = await core.readNode({ name });
      assert.equal(node.metadata?.labels?.[QUARANTINED_LABEL], 'true');
      assert.equal(node.spec?.unschedulable, true);
      const ours = (node.spec?.taints ?? []).filter((t) => t.key === QUARANTINE_TAINT_KEY);
      assert.deepEqual(
        ours.map((t) => t.effect),
        ['NoSchedule'],
      );
      assert.ok(
        !(node.spec?.taints ?? []).some((t) => t.effect === 'NoExecute' && t.key.startsWith('fleetmedic')),
      );
      const record = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
      assert.equal(record.kind, 'ok');
      assert.equal(record.kind === 'ok' && record.record.workflowId, 'wf-roundtrip');

      const again = await acts.quarantineNode({
        node: name,
        workflowId: 'wf-roundtrip',
        reason: 'XID 79 again',
      });
      assert.equal(again.changed, false, 'a second quarantine is a no-op');
      assert.deepEqual(again.record, q.record);

      const view = await acts.getNode({ node: name });
      assert.ok(view.exists);
      if (view.exists) {
        assert.equal(view.quarantined, true);
        assert.equal(view.cordon?.workflowId, 'wf-roundtrip');
        assert.equal(view.gpuCapacity, 8);
        assert.equal(view.gpuAllocatable, 8);
        assert.equal(view.ready, true);
      }

      const r = await acts.releaseNode({ node: name, workflowId: 'wf-roundtrip' });
      assert.deepEqual(r, { node: name, released: true, uncordoned: true, leftCordoned: false });
      await assertRestored(name, before);
      const twice = await acts.releaseNode({ node: name, workflowId: 'wf-roundtrip' });
      assert.equal(twice.released, false, 'a retried release after success is a no-op');
    } finally {
      await restore(name, before);
    }
  });

  it('never uncordons a node that someone else had cordoned', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    const { core } = clients(stack.kc);
    try {
      await core.patchNode({ name, body: { spec: { unschedulable: true } } }, mergePatch);
      const cordoned = await snapshot(name);
      const q = await acts.quarantineNode({ node: name, workflowId: 'wf-pre', reason: 'XID 48' });
      assert.equal(q.record.preexistingCordon, true);
      const r = await acts.releaseNode({ node: name, workflowId: 'wf-pre' });
      assert.deepEqual(r, { node: name, released: true, uncordoned: false, leftCordoned: true });
      const node = await core.readNode({ name });
      assert.equal(node.spec?.unschedulable, true, 'the operator cordon stays');
      await assertRestored(name, cordoned);
    } finally {
      await restore(name, before);
    }
  });

  it('refuses a release by another workflow, and a second quarantine by another workflow, changing nothing', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      await acts.quarantineNode({ node: name, workflowId: 'wf-owner', reason: 'XID 79' });
      const quarantined = await snapshot(name);
      await assert.rejects(
        acts.releaseNode({ node: name, workflowId: 'wf-intruder' }),
        isFailure('NotOwner'),
      );
      await assert.rejects(
        acts.quarantineNode({ node: name, workflowId: 'wf-intruder', reason: 'x' }),
        isFailure('QuarantinedByOther'),
      );
      assert.deepEqual(await snapshot(name), quarantined);
    } finally {
      await restore(name, before);
    }
  });

  it('fails an unknown node with a non-retryable NodeNotFound and creates nothing', async () => {
    const ghost = 'gpu-node-does-not-exist';
    await assert.rejects(
      acts.quarantineNode({ node: ghost, workflowId: 'wf', reason: 'x' }),
      isFailure('NodeNotFound'),
    );
    await assert.rejects(acts.releaseNode({ node: ghost, workflowId: 'wf' }), isFailure('NodeNotFound'));
    await assert.rejects(
      acts.recordRemediation({ node: ghost, at: new Date().toISOString() }),
      isFailure('NodeNotFound'),
    );
    assert.deepEqual(await acts.getNode({ node: ghost }), { name: ghost, exists: false });
    const { core } = clients(stack.kc);
    await assert.rejects(core.readNode({ name: ghost }), (err: unknown) => isApiError(err, 404));
  });

  it('refuses invalid input and a node of another cluster without calling the API for a write', async () => {
    await assert.rejects(
      acts.quarantineNode({ node: 'Not_A_Name', workflowId: 'wf', reason: 'x' }),
      isFailure('InvalidInput'),
    );
    await assert.rejects(
      acts.drainNode({ node: nodes[0]!, workflowId: 'wf', concurrency: 0 }),
      (err: unknown) =>
        isFailure('InvalidInput')(err) && /concurrency.*got 0 \(number\)/.test((err as Error).message),
    );
    const other = createKubernetesActivities({ kc: stack.kc, clusterId: 'another-cluster' });
    const name = nodes[3]!;
    const before = await snapshot(name);
    await assert.rejects(
      other.quarantineNode({ node: name, workflowId: 'wf', reason: 'x' }),
      isFailure('WrongCluster'),
    );
    assert.deepEqual(await snapshot(name), before);
  });

  /**
   * Before each of the first `times` PATCHes of `name` the activities send, writes the node from
   * another client (label `fmtest/conflict` = the conflict's number), so the PATCH, carrying the
   * resourceVersion it read, is refused with 409. Counts the conflicts made.
   */
  function conflictBeforePatches(name: string, times: number): { count: number } {
    const { core } = clients(stack.kc);
    const conflicts = { count: 0 };
    rkc.beforeSend = async (req) => {
      if (
        conflicts.count < times &&
        String(req.getHttpMethod()) === 'PATCH' &&
        new URL(req.getUrl()).pathname === `/api/v1/nodes/${name}`
      ) {
        conflicts.count++;
        await core.patchNode(
          { name, body: { metadata: { labels: { 'fmtest/conflict': String(conflicts.count) } } } },
          mergePatch,
        );
      }
    };
    return conflicts;
  }

  it('reads the node again at once when it changed between read and write (409), keeping the other write', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      const conflicts = conflictBeforePatches(name, 1);
      const result = await acts.quarantineNode({ node: name, workflowId: 'wf-409', reason: 'x' });
      assert.equal(result.changed, true);
      assert.equal(conflicts.count, 1, 'the first patch was refused');
      const after = await snapshot(name);
      assert.equal(after.unschedulable, true);
      assert.equal(after.labels['fmtest/conflict'], '1', 'the concurrent write survived');
    } finally {
      rkc.beforeSend = undefined;
      await restore(name, before);
    }
  });

  it('throws the 409 for Temporal to retry when the node keeps changing (5 conflicts), writing nothing', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      const conflicts = conflictBeforePatches(name, Infinity);
      await assert.rejects(
        acts.quarantineNode({ node: name, workflowId: 'wf-409', reason: 'x' }),
        (err: unknown) => isApiError(err, 409),
      );
      assert.equal(conflicts.count, 5, 'five attempts, each refused');
      const after = await snapshot(name);
      assert.equal(after.labels[QUARANTINED_LABEL], undefined, 'nothing of the quarantine was written');
      assert.equal(after.unschedulable, false);
    } finally {
      rkc.beforeSend = undefined;
      await restore(name, before);
    }
  });

  /** The quarantine steps over the recording kubeconfig: the calls they send land in `rkc.calls`. */
  function recordedSteps() {
    return createQuarantineSteps({
      kc: rkc,
      clusterId: stack.state.clusterId,
      apiClient: (api) => rkc.makeApiClient(api),
    });
  }

  it('quarantines from the node its caller read: one PATCH, no second read', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    const steps = recordedSteps();
    try {
      const read = await steps.read(name);
      assert.ok(read, 'the node exists');
      const from = rkc.calls.length;
      const result = await steps.quarantine({ node: name, workflowId: 'wf-read-once', reason: 'x' }, read);
      assert.equal(result.changed, true);
      const sent = rkc.calls.slice(from).map((c) => `${c.method} ${new URL(c.url).pathname} ${c.status}`);
      // Planned from the caller's read: the first call is the PATCH. (Should the node change in the
      // milliseconds between read and write, a 409 and a second read follow; never a read first.)
      assert.match(sent[0] ?? '', new RegExp(`^PATCH /api/v1/nodes/${name} (200|409)$`), sent.join(', '));
      if (sent[0]!.endsWith(' 200')) assert.equal(sent.length, 1, sent.join(', '));
      assert.equal((await snapshot(name)).unschedulable, true);
    } finally {
      await restore(name, before);
    }
  });

  it('reads again when the node its caller read has changed since (409), keeping the other write', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    const steps = recordedSteps();
    const { core } = clients(stack.kc);
    try {
      const stale = await steps.read(name);
      assert.ok(stale, 'the node exists');
      await core.patchNode({ name, body: { metadata: { labels: { 'fmtest/changed': 'yes' } } } }, mergePatch);
      const from = rkc.calls.length;
      const result = await steps.quarantine({ node: name, workflowId: 'wf-stale', reason: 'x' }, stale);
      assert.equal(result.changed, true);
      const sent = rkc.calls.slice(from).map((c) => `${c.method} ${c.status}`);
      assert.deepEqual(
        [sent[0], sent[1], sent.at(-1)],
        ['PATCH 409', 'GET 200', 'PATCH 200'],
        sent.join(', '),
      );
      const after = await snapshot(name);
      assert.equal(after.unschedulable, true);
      assert.equal(after.labels['fmtest/changed'], 'yes', 'the concurrent write survived');
    } finally {
      await restore(name, before);
    }
  });

  it('refuses a node of another cluster at the read, before anything is written', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    const other = createQuarantineSteps({ kc: stack.kc, clusterId: 'another-cluster' });
    await assert.rejects(other.read(name), isFailure('WrongCluster'));
    const read = await createQuarantineSteps({ kc: stack.kc, clusterId: stack.state.clusterId }).read(name);
    await assert.rejects(
      other.quarantine({ node: name, workflowId: 'wf', reason: 'x' }, read),
      isFailure('WrongCluster'),
    );
    assert.equal(await other.read('fmtest-no-such-node'), undefined, 'a missing node reads as undefined');
    assert.deepEqual(await snapshot(name), before);
  });

  it('fails with a non-retryable Forbidden (the API message) for an identity without RBAC, leaving the node unchanged', async () => {
    const ns = await tempNamespace(stack.kc, 'fmrbac');
    const { core } = clients(stack.kc);
    const rbac = stack.kc.makeApiClient(RbacAuthorizationV1Api);
    const role = `fmtest-nodes-get-${ns.name}`;
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      const tokenFor = async (sa: string) => {
        await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: sa } } });
        const tr = await core.createNamespacedServiceAccountToken({
          name: sa,
          namespace: ns.name,
          body: { spec: { audiences: [], expirationSeconds: 600 } },
        });
        const cluster = stack.kc.getCurrentCluster()!;
        const kc = new KubeConfig();
        kc.loadFromOptions({
          clusters: [{ ...cluster, name: 'c' }],
          users: [{ name: sa, token: tr.status!.token }],
          contexts: [{ name: 'ctx', cluster: 'c', user: sa }],
          currentContext: 'ctx',
        });
        return kc;
      };

      // No binding at all: even reading the node is denied.
      const nobody = createKubernetesActivities({
        kc: await tokenFor('nobody'),
        clusterId: stack.state.clusterId,
      });
      await assert.rejects(
        nobody.quarantineNode({ node: name, workflowId: 'wf-rbac', reason: 'x' }),
        (err: unknown) =>
          isFailure('Forbidden')(err) &&
          /forbidden: User "system:serviceaccount:.*:nobody"/.test((err as Error).message),
      );

      // Read-only on nodes: the read works, the write is denied, the node stays as it was.
      const readerKc = await tokenFor('reader');
      await rbac.createClusterRole({
        body: {
          metadata: { name: role },
          rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
        },
      });
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: role },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
          subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns.name }],
        },
      });
      const reader = createKubernetesActivities({ kc: readerKc, clusterId: stack.state.clusterId });
      await eventually('the binding to take effect', async () =>
        (await reader.getNode({ node: name })).exists ? true : undefined,
      );
      await assert.rejects(
        reader.quarantineNode({ node: name, workflowId: 'wf-rbac', reason: 'x' }),
        (err: unknown) =>
          isFailure('Forbidden')(err) && /cannot patch resource "nodes"/.test((err as Error).message),
      );
      assert.deepEqual(await snapshot(name), before);
    } finally {
      await rbac.deleteClusterRoleBinding({ name: role }).catch(() => {});
      await rbac.deleteClusterRole({ name: role }).catch(() => {});
      await restore(name, before);
      await dropNamespace(ns);
    }
  });

  it('records remediations durably on the node, once per instant, newest last', async () => {
    const name = nodes[3]!;
    const before = await snapshot(name);
    try {
      const t1 = '2026-03-01T10:00:00.000Z';
      const t2 = '2026-03-05T10:00:00.000Z';
      assert.deepEqual((await acts.recordRemediation({ node: name, at: t2 })).remediations, [t2]);
      assert.deepEqual((await acts.recordRemediation({ node: name, at: t1 })).remediations, [t1, t2]);
      assert.deepEqual(
        (await acts.recordRemediation({ node: name, at: t1 })).remediations,
        [t1, t2],
        'a retry',
      );
      const view = await acts.getNode({ node: name });
      assert.deepEqual(view.exists && view.remediations, [t1, t2]);
    } finally {
      await restore(name, before);
    }
  });

  it('lists GPU nodes and the pods on a node as compact views', async () => {
    const list = await acts.listGpuNodes();
    for (const name of nodes) {
      const n = list.find((x) => x.name === name);
      assert.ok(n, `${name} listed`);
      assert.equal(n.gpuCapacity, 8);
      assert.equal(n.labels[SIMULATED_LABEL], 'true');
    }
    const ns = await tempNamespace(stack.kc, 'fmpods');
    try {
      const { core } = clients(stack.kc);
      await core.createNamespacedPod({
        namespace: ns.name,
        body: {
          metadata: { name: 'probe', labels: { app: 'probe' } },
          spec: {
            nodeName: nodes[3],
            containers: [
              {
                name: 'c',
                image: 'x',
                resources: {
                  requests: { cpu: '250m', 'nvidia.com/gpu': '1' },
                  limits: { 'nvidia.com/gpu': '1' },
                },
              },
            ],
          },
        },
      });
      const pods = await acts.podsOnNode({ node: nodes[3]! });
      const probe = pods.find((p) => p.namespace === ns.name && p.name === 'probe');
      assert.ok(probe);
      assert.deepEqual(probe.requests, { cpu: 0.25, 'nvidia.com/gpu': 1 });
      assert.equal(probe.ownerKind, null);
      assert.deepEqual(probe.labels, { app: 'probe' });
    } finally {
      await dropNamespace(ns);
    }
  });

  it('drains a node with a 2-replica Deployment under a PDB (maxUnavailable 1) without ever losing more than 1 replica', async () => {
    await drainScene('fmdrain', async ({ ns, target, others }) => {
      const { policy } = clients(stack.kc);
      const w = await workloadOn(ns.name, target, 'web', 2, { maxUnavailable: 1 });
      await acts.quarantineNode({ node: target, workflowId: 'wf-drain', reason: 'XID 79' });

      // Sample availability while the drain runs: Ready, non-terminating replicas.
      let minReady = Infinity;
      let samples = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const ready = (await livePods(stack.kc, ns.name, 'web')).filter(isReady).length;
          minReady = Math.min(minReady, ready);
          samples++;
          await sleep(50);
        }
      })();
      const evictionsBefore = rkc.evictionCalls().length;
      const run = drain({
        node: target,
        workflowId: 'wf-drain',
        deadlineSeconds: 50,
        podFilter: { namespaces: [ns.name] },
      });
      let result: DrainNodeResult;
      try {
        // kwok makes pods Ready at once, so a replacement would satisfy the PDB before the second
        // eviction is tried. Give replacements a place to go only once the drain is waiting on the
        // PDB (one pod evicted, its replacement Pending, no disruption allowed): the capacity of the
        // other nodes "arrives" mid-drain, as on a cluster that is scaling up.
        await eventually('the drain to wait on the PDB after one eviction', async () => {
          if (!run.beats.some((b) => b.evicted.length === 1)) return undefined;
          const p = await policy.readNamespacedPodDisruptionBudget({ name: 'web', namespace: ns.name });
          return p.status?.disruptionsAllowed === 0 ? true : undefined;
        });
        await sleep(1_000); // several PDB polls while nothing is allowed
        assert.equal(run.beats.at(-1)!.evicted.length, 1, 'no second eviction while the PDB allows none');
        await w.spread(others);
        result = await run.result;
      } finally {
        sampling = false;
        await sampler;
      }
      assert.equal(result.nodeGone, false);
      assert.equal(result.evicted, 2);
      assert.ok(
        result.refused429 <= 1,
        `the drain waits for the PDB instead of sending evictions it refuses (${result.refused429} refused)`,
      );
      assert.ok(samples >= 5, `sampled ${samples} times`);
      assert.ok(minReady >= 1, `at some point ${2 - minReady} replicas were unavailable`);
      const calls = rkc.evictionCalls().slice(evictionsBefore);
      assert.equal(calls.filter((c) => c.status === 429).length, result.refused429);
      const originals = new Set(w.pods.map((p) => p.metadata!.uid!));
      assert.deepEqual(new Set(calls.filter((c) => c.status < 300).map((c) => c.uid)), originals);
      const lastBeat = run.beats.at(-1)!;
      assert.deepEqual(new Set(lastBeat.evicted), originals);
      assert.deepEqual(lastBeat.pending, []);

      const live = await eventually('2 Ready replicas elsewhere', async () => {
        const pods = await livePods(stack.kc, ns.name, 'web');
        return pods.length === 2 && pods.every(isReady) ? pods : undefined;
      });
      assert.ok(live.every((p) => p.spec?.nodeName !== target && !originals.has(p.metadata!.uid!)));
    });
  });

  it('drains several Deployments, each under its own PDB (maxUnavailable 1), pacing each by its PDB', async () => {
    await drainScene('fmpdbs', async ({ ns, target, others }) => {
      const apps = ['alpha', 'beta', 'gamma', 'delta'];
      const replicas = 3;
      const originals = new Set<string>();
      let w: Awaited<ReturnType<typeof workloadOn>> | undefined;
      for (const app of apps) {
        w = await workloadOn(ns.name, target, app, replicas, { maxUnavailable: 1 });
        for (const p of w.pods) originals.add(p.metadata!.uid!);
      }
      await w!.spread(others);
      await acts.quarantineNode({ node: target, workflowId: 'wf-pdbs', reason: 'XID 79' });

      // Sample availability per Deployment while the drain runs: Ready, non-terminating replicas.
      const minReady = new Map(apps.map((app) => [app, Infinity]));
      let samples = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const { core } = clients(stack.kc);
          const live = (await core.listNamespacedPod({ namespace: ns.name })).items.filter(
            (p) => !p.metadata?.deletionTimestamp && isReady(p),
          );
          for (const app of apps) {
            const ready = live.filter((p) => p.metadata?.labels?.app === app).length;
            minReady.set(app, Math.min(minReady.get(app)!, ready));
          }
          samples++;
          await sleep(50);
        }
      })();
      const evictionsBefore = rkc.evictionCalls().length;
      let result: DrainNodeResult;
      try {
        result = await drain({
          node: target,
          workflowId: 'wf-pdbs',
          deadlineSeconds: 90,
          podFilter: { namespaces: [ns.name] },
        }).result;
      } finally {
        sampling = false;
        await sampler;
      }
      assert.equal(result.nodeGone, false);
      assert.equal(result.evicted, apps.length * replicas);
      assert.ok(samples >= 5, `sampled ${samples} times`);
      for (const [app, ready] of minReady)
        assert.ok(
          ready >= replicas - 1,
          `${app}: at some point ${replicas - ready} replicas were unavailable`,
        );
      const calls = rkc.evictionCalls().slice(evictionsBefore);
      assert.equal(calls.filter((c) => c.status === 429).length, result.refused429);
      // A plain pool over the same pods (the drain before PDB grouping) gets 5 or more 429s here.
      assert.ok(
        result.refused429 <= 1,
        `the drain waits for each PDB instead of sending evictions it refuses (${result.refused429} refused)`,
      );
      assert.deepEqual(new Set(calls.filter((c) => c.status < 300).map((c) => c.uid)), originals);
      assert.equal(calls.filter((c) => c.status < 300).length, originals.size, 'each pod evicted once');
    });
  });

  it('evicts a pod that is not Ready while its PDB allows no disruption of Ready ones, as the Eviction API lets it', async () => {
    await drainScene('fmunready', async ({ ns, target, others }) => {
      const { core, policy } = clients(stack.kc);
      const w = await workloadOn(ns.name, target, 'job', 3, { minAvailable: 2 });
      await w.spread(others);
      // A workload on a failing GPU: one replica not Ready. 2 healthy = 2 desired: no disruption of a
      // Ready pod is allowed, but the not-Ready one may go (IfHealthyBudget, the default).
      const sick = w.pods[0]!;
      await core.patchNamespacedPodStatus(
        {
          name: sick.metadata!.name!,
          namespace: ns.name,
          body: { status: { conditions: [{ type: 'Ready', status: 'False' }] } },
        },
        mergePatch,
      );
      await eventually('the PDB to count 2 healthy and allow no disruption', async () => {
        const p = await policy.readNamespacedPodDisruptionBudget({ name: 'job', namespace: ns.name });
        return p.status?.currentHealthy === 2 && p.status.disruptionsAllowed === 0 ? p : undefined;
      });
      await acts.quarantineNode({ node: target, workflowId: 'wf-unready', reason: 'XID 79' });
      const evictionsBefore = rkc.evictionCalls().length;
      const result = await drain({
        node: target,
        workflowId: 'wf-unready',
        deadlineSeconds: 40,
        podFilter: { namespaces: [ns.name] },
      }).result;
      assert.equal(result.evicted, 3);
      const accepted = rkc
        .evictionCalls()
        .slice(evictionsBefore)
        .filter((c) => c.status < 300);
      assert.equal(accepted[0]?.uid, sick.metadata!.uid, 'the pod that is not Ready goes first');
      assert.ok(result.refused429 <= 1, `${result.refused429} evictions refused`);
    });
  });

  it('resumes an interrupted drain from its heartbeat without evicting any pod twice', async () => {
    await drainScene('fmresume', async ({ ns, target, others }) => {
      const w = await workloadOn(ns.name, target, 'api', 3, { maxUnavailable: 1 });
      await w.spread(others);
      await acts.quarantineNode({ node: target, workflowId: 'wf-resume', reason: 'XID 79' });
      const evictionsBefore = rkc.evictionCalls().length;

      // First attempt: cancelled (as when its worker dies) right after its first eviction.
      // One eviction at a time: with parallel evictions all three can be accepted before the
      // cancellation lands (seen when the PDB had not observed the pods yet), leaving nothing to resume.
      const input = {
        node: target,
        workflowId: 'wf-resume',
        deadlineSeconds: 50,
        concurrency: 1,
        podFilter: { namespaces: [ns.name] },
      };
      const first = drain(input);
      first.env.on('heartbeat', (d: DrainProgress) => {
        if (d.evicted.length >= 1) first.env.cancel();
      });
      await assert.rejects(first.result, (err: unknown) => err instanceof CancelledFailure);
      const details = first.beats.at(-1)!;
      assert.ok(details.evicted.length >= 1 && details.evicted.length < 3, JSON.stringify(details));

      // Second attempt: Temporal hands it the last heartbeat details.
      const second = drain(input, details);
      const result = await second.result;
      assert.equal(result.evicted, 3);
      assert.equal(
        second.beats[0]?.startedAt,
        details.startedAt,
        'the deadline counts from the first attempt',
      );

      const accepted = rkc.acceptedEvictions().slice(0);
      const mine = accepted.filter((uid) => w.pods.some((p) => p.metadata!.uid === uid));
      const perUid = new Map<string, number>();
      for (const uid of mine) perUid.set(uid, (perUid.get(uid) ?? 0) + 1);
      assert.equal(perUid.size, 3, 'every original pod was evicted');
      for (const [uid, count] of perUid) assert.equal(count, 1, `pod ${uid} was evicted ${count} times`);
      const attempts = rkc.evictionCalls().slice(evictionsBefore);
      for (const uid of details.evicted) {
        assert.equal(
          attempts.filter((c) => c.uid === uid).length,
          1,
          'a pod evicted by the first attempt is never sent to the Eviction API again',
        );
      }
      await eventually('3 Ready replicas elsewhere', async () => {
        const pods = await livePods(stack.kc, ns.name, 'api');
        return pods.length === 3 && pods.every((p) => isReady(p) && p.spec?.nodeName !== target)
          ? true
          : undefined;
      });
    });
  });

  it('finishes an eviction that a killed attempt left charged to the PDB but not carried out', async () => {
    // A worker killed in the middle of an eviction request: the API server charged the PDB
    // (status.disruptedPods) and then dropped the deletion with the cancelled request. Until that
    // record expires (2 minutes) the PDB refuses every other eviction. The budget record is written
    // here as the API server writes it; the retried attempt must delete that pod and carry on.
    await drainScene('fmcharged', async ({ ns, target, others }) => {
      const { policy } = clients(stack.kc);
      const w = await workloadOn(ns.name, target, 'api', 3, { maxUnavailable: 1 });
      await w.spread(others);
      await acts.quarantineNode({ node: target, workflowId: 'wf-charged', reason: 'XID 79' });
      const charged = w.pods[0]!;
      const startedAt = new Date(Date.now() - 5_000).toISOString();
      await policy.patchNamespacedPodDisruptionBudgetStatus(
        {
          name: 'api',
          namespace: ns.name,
          body: {
            status: { disruptedPods: { [charged.metadata!.name!]: new Date() }, disruptionsAllowed: 0 },
          },
        },
        mergePatch,
      );
      await eventually('the PDB to count the charged pod as disrupted', async () => {
        const p = await policy.readNamespacedPodDisruptionBudget({ name: 'api', namespace: ns.name });
        return p.status?.disruptedPods?.[charged.metadata!.name!] && p.status.disruptionsAllowed === 0
          ? p
          : undefined;
      });
      const evictionsBefore = rkc.evictionCalls().length;

      const result = await drain(
        { node: target, workflowId: 'wf-charged', deadlineSeconds: 60, podFilter: { namespaces: [ns.name] } },
        { evicted: [], pending: w.pods.map((p) => p.metadata!.uid!), refused429: 0, startedAt },
      ).result;
      assert.equal(result.completedInterrupted, 1);
      assert.equal(result.evicted, 3);
      const attempts = rkc.evictionCalls().slice(evictionsBefore);
      assert.equal(
        attempts.filter((c) => c.uid === charged.metadata!.uid).length,
        0,
        'the charged pod is deleted, not evicted a second time',
      );
      await eventually('3 Ready replicas elsewhere', async () => {
        const pods = await livePods(stack.kc, ns.name, 'api');
        return pods.length === 3 && pods.every((p) => isReady(p) && p.spec?.nodeName !== target)
          ? true
          : undefined;
      });
    });
  });

  it('refuses to drain a node with an unmanaged pod, evicting nothing', async () => {
    const ns = await tempNamespace(stack.kc, 'fmbare');
    const target = nodes[2]!;
    const snap = await snapshot(target);
    const { core } = clients(stack.kc);
    try {
      const w = await workloadOn(ns.name, target, 'managed', 1, { maxUnavailable: 1 });
      const bare = await core.createNamespacedPod({
        namespace: ns.name,
        body: {
          metadata: { name: 'bare' },
          spec: { nodeName: target, containers: [{ name: 'c', image: 'x' }] },
        },
      });
      await acts.quarantineNode({ node: target, workflowId: 'wf-bare', reason: 'XID 79' });
      const evictionsBefore = rkc.evictionCalls().length;
      await assert.rejects(
        drain({ node: target, workflowId: 'wf-bare', podFilter: { namespaces: [ns.name] } }).result,
        (err: unknown) =>
          isFailure('DrainRefused')(err) &&
          (err as Error).message.includes(`${ns.name}/bare: not managed by a controller`) &&
          (err as Error).message.includes('nothing was evicted'),
      );
      assert.equal(rkc.evictionCalls().length, evictionsBefore, 'no eviction was attempted');
      const stillThere = await core.readNamespacedPod({ name: 'bare', namespace: ns.name });
      assert.equal(stillThere.metadata?.uid, bare.metadata?.uid);
      assert.equal(stillThere.metadata?.deletionTimestamp, undefined);
      const managed = await core.readNamespacedPod({ name: w.pods[0]!.metadata!.name!, namespace: ns.name });
      assert.equal(managed.metadata?.deletionTimestamp, undefined);
    } finally {
      await restore(target, snap);
      await dropNamespace(ns);
    }
  });

  it('ends a drain the PDB can never allow with DrainDeadlineExceeded listing the pods left', async () => {
    const ns = await tempNamespace(stack.kc, 'fmdeadline');
    const target = nodes[2]!;
    const snap = await snapshot(target);
    try {
      const w = await workloadOn(ns.name, target, 'pinned', 2, { minAvailable: 2 });
      await acts.quarantineNode({ node: target, workflowId: 'wf-deadline', reason: 'XID 79' });
      const started = Date.now();
      await assert.rejects(
        drain({
          node: target,
          workflowId: 'wf-deadline',
          deadlineSeconds: 3,
          podFilter: { namespaces: [ns.name] },
        }).result,
        (err: unknown) => {
          isFailure('DrainDeadlineExceeded')(err);
          const message = (err as Error).message;
          for (const pod of w.pods) {
            const why = `not evicted: PodDisruptionBudget ${ns.name}/pinned allows no disruption`;
            assert.ok(message.includes(`${ns.name}/${pod.metadata!.name} (${why})`), message);
          }
          assert.match(message, /\d+ eviction\(s\) refused by PodDisruptionBudgets/);
          return true;
        },
      );
      const uids = new Set(w.pods.map((p) => p.metadata!.uid!));
      assert.equal(
        rkc.evictionCalls().filter((c) => uids.has(c.uid)).length,
        0,
        'no eviction is sent while the PDB allows no disruption',
      );
      const elapsed = (Date.now() - started) / 1000;
      assert.ok(elapsed >= 3 && elapsed < 15, `gave up after ${elapsed}s`);
      const live = await livePods(stack.kc, ns.name, 'pinned');
      assert.deepEqual(
        new Set(live.map((p) => p.metadata!.uid)),
        new Set(w.pods.map((p) => p.metadata!.uid)),
        'both pods are still there',
      );
    } finally {
      await restore(target, snap);
      await dropNamespace(ns);
    }
  });

  it('returns nodeGone when the node is deleted mid-drain', async () => {
    const ns = await tempNamespace(stack.kc, 'fmgone');
    const { core } = clients(stack.kc);
    const index = 200 + Math.floor(Math.random() * 50);
    const manifest = simNodeManifest(index, stack.state.clusterId);
    const name = `fmtest-gone-${index}`;
    manifest.metadata!.name = name;
    manifest.metadata!.labels!['kubernetes.io/hostname'] = name;
    try {
      await core.createNode({ body: manifest });
      await eventually('the temporary node Ready', async () => {
        const n = await core.readNode({ name });
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? n : undefined;
      });
      await workloadOn(ns.name, name, 'stuck', 1, { minAvailable: 1 });
      await acts.quarantineNode({ node: name, workflowId: 'wf-gone', reason: 'XID 79' });
      const run = drain({ node: name, workflowId: 'wf-gone', deadlineSeconds: 45 });
      // The first heartbeat comes with the plan; later ones from the wait on the PDB.
      await eventually('the drain waiting on the PDB', () =>
        Promise.resolve(run.beats.length >= 3 && run.beats.at(-1)!.pending.length === 1 ? true : undefined),
      );
      await core.deleteNode({ name });
      const result = await run.result;
      assert.equal(result.nodeGone, true);
      assert.equal(result.evicted, 0);
    } finally {
      await core.deleteNode({ name }).catch(() => {});
      // Not dropNamespace: pods bound to a deleted node wait for the pod GC, and no other test uses it.
      await ns.remove();
    }
  });

  it('restarts only the named pod on the node, by eviction', async () => {
    const ns = await tempNamespace(stack.kc, 'fmrestart');
    const target = nodes[2]!;
    const snap = await snapshot(target);
    try {
      const w = await workloadOn(ns.name, target, 'llm', 2, { maxUnavailable: 1 });
      const [victim, bystander] = w.pods as [(typeof w.pods)[0], (typeof w.pods)[0]];
      await assert.rejects(acts.restartPods({ node: target, namespace: ns.name }), isFailure('InvalidInput'));
      const evictionsBefore = rkc.evictionCalls().length;
      const env = new MockActivityEnvironment();
      const result: RestartPodsResult = await env.run(acts.restartPods, {
        node: target,
        namespace: ns.name,
        podNames: [victim.metadata!.name!, 'no-such-pod'],
      });
      assert.equal(result.method, 'evict');
      assert.deepEqual(
        result.restarted.map((p) => p.uid),
        [victim.metadata!.uid],
      );
      assert.deepEqual(result.missing, ['no-such-pod']);
      const calls = rkc.evictionCalls().slice(evictionsBefore);
      assert.deepEqual(
        calls.filter((c) => c.status < 300).map((c) => c.uid),
        [victim.metadata!.uid],
      );
      const { core } = clients(stack.kc);
      const other = await core.readNamespacedPod({ name: bystander.metadata!.name!, namespace: ns.name });
      assert.equal(other.metadata?.uid, bystander.metadata?.uid);
      assert.equal(other.metadata?.deletionTimestamp, undefined, 'the other replica is untouched');
    } finally {
      await restore(target, snap);
      await dropNamespace(ns);
    }
  });

  after(async () => {
    await stopStack?.();
  });
});
