import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  createConfiguration,
  ServerConfiguration,
  wrapHttpLibrary,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type RequestContext,
  type V1Node,
} from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import {
  createKubernetesActivities,
  createQuarantineSteps,
  type KubernetesActivities,
} from '../../src/activities/kubernetes/index.js';
import { createNodeRecordActivities, type NodeRecordActivities } from '../../src/activities/node-records.js';
import { createQuarantineActivities, type QuarantineActivities } from '../../src/activities/quarantine.js';
import type { QuarantineVerdict } from '../../src/domain/fleet-budget.js';
import { isApiError } from '../../src/k8s/api-errors.js';
import { parseEpisodeRecord } from '../../src/k8s/episodes.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { parseHold } from '../../src/k8s/node-hold.js';
import { mergePatch } from '../../src/k8s/patch.js';
import {
  CORDON_ANNOTATION,
  EPISODES_ANNOTATION,
  HOLD_ANNOTATION,
  QUARANTINED_LABEL,
} from '../../src/k8s/remediation-labels.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { clients, eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// Against the embedded cluster's API server, on nodes of this file's own (created in before, deleted
// in after), each test starting from a node without fleetmedic's marks. The fleet breaker is a fake:
// its own tests are in remediation-support.test.ts.

const NODES = { four: 'fmtest-records-4gpu', plain: 'fmtest-records-plain' } as const;
const WORKFLOW = 'remediation/records-test';
const EPISODE = 'a1b2c3@2026-11-27T10:00:00Z';

function isFailure(type: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, true, err.message);
    return true;
  };
}

/** API clients of `kc` that run `beforeSend` before each request (to change a node between read and write). */
function hookedClients(kc: KubeConfig) {
  const hook: { beforeSend?: (req: RequestContext) => Promise<void> } = {};
  const inner = createConfiguration().httpApi;
  const factory = <T extends ApiType>(api: ApiConstructor<T>): T => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster');
    const httpApi = wrapHttpLibrary({
      send: async (req) => {
        await hook.beforeSend?.(req);
        return inner.send(req).toPromise();
      },
    });
    return new api(
      createConfiguration({
        baseServer: new ServerConfiguration(cluster.server, {}),
        authMethods: { default: kc },
        httpApi,
      }),
    );
  };
  return { hook, factory };
}

describe('node record activities against the embedded cluster', () => {
  let stack: TestStack;
  let records: NodeRecordActivities;
  let kubernetes: KubernetesActivities;
  let quarantine: QuarantineActivities;
  let hook: { beforeSend?: (req: RequestContext) => Promise<void> };
  /** Nodes the fake breaker heard of, and what it answers. */
  const breaker: { reported: string[]; verdict: QuarantineVerdict } = {
    reported: [],
    verdict: { allowed: true, detail: 'automation is running' },
  };

  const read = (name: string): Promise<V1Node> => clients(stack.kc).core.readNode({ name });
  const annotation = async (name: string, key: string) => (await read(name)).metadata?.annotations?.[key];
  /** What fleetmedic writes on a node (kwok and the node controller change the rest on their own schedule). */
  async function marks(name: string) {
    const node = await read(name);
    return {
      annotations: Object.entries(node.metadata?.annotations ?? {}).filter(([k]) =>
        k.startsWith('fleetmedic.io/'),
      ),
      labels: Object.entries(node.metadata?.labels ?? {}).filter(([k]) => k.startsWith('fleetmedic.io/')),
      unschedulable: node.spec?.unschedulable === true,
      taints: (node.spec?.taints ?? []).filter((t) => t.key.startsWith('fleetmedic.io/')),
    };
  }
  async function annotate(name: string, annotations: Record<string, string | null>): Promise<void> {
    await clients(stack.kc).core.patchNode({ name, body: { metadata: { annotations } } }, mergePatch);
  }

  before(async () => {
    stack = await useTestStack();
    const { core } = clients(stack.kc);
    for (const [index, name, gpus] of [
      [130, NODES.four, '4'],
      [131, NODES.plain, '8'],
    ] as const) {
      const manifest = simNodeManifest(index, stack.state.clusterId);
      manifest.metadata!.name = name;
      manifest.metadata!.labels!['kubernetes.io/hostname'] = name;
      manifest.status!.capacity!['nvidia.com/gpu'] = gpus;
      manifest.status!.allocatable!['nvidia.com/gpu'] = gpus;
      await core.deleteNode({ name }).catch(() => {});
      await eventually(`leftover ${name} gone`, async () =>
        (await core.readNode({ name }).then(
          () => false,
          (err: unknown) => isApiError(err, 404),
        ))
          ? true
          : undefined,
      );
      await core.createNode({ body: manifest });
      await eventually(`${name} Ready`, async () =>
        (await read(name)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
          ? true
          : undefined,
      );
    }
    const hooked = hookedClients(stack.kc);
    hook = hooked.hook;
    const deps = { kc: stack.kc, clusterId: stack.state.clusterId, apiClient: hooked.factory };
    records = createNodeRecordActivities(deps);
    kubernetes = createKubernetesActivities(deps);
    quarantine = quarantineWith(deps);
  });

  /** The quarantine activities on `deps`, with the test's breaker as the fleet budget. */
  function quarantineWith(deps: { kc: KubeConfig; clusterId: string }) {
    return createQuarantineActivities({
      support: {
        budgetReportFailure: (i) => {
          breaker.reported.push(i.node);
          return Promise.resolve(breaker.verdict);
        },
        budgetAcquire: () => Promise.reject(new Error('not in these tests')),
      },
      kubernetes,
      steps: createQuarantineSteps(deps),
    });
  }

  after(async () => {
    const { core } = clients(stack.kc);
    for (const name of Object.values(NODES)) await core.deleteNode({ name }).catch(() => {});
  });

  // Every test starts from nodes without fleetmedic's marks.
  beforeEach(async () => {
    hook.beforeSend = undefined;
    breaker.reported = [];
    breaker.verdict = { allowed: true, detail: 'automation is running' };
    const { core } = clients(stack.kc);
    for (const name of Object.values(NODES)) {
      const node = await read(name);
      await core.patchNode(
        {
          name,
          body: {
            metadata: {
              labels: { [QUARANTINED_LABEL]: null },
              annotations: {
                [CORDON_ANNOTATION]: null,
                [EPISODES_ANNOTATION]: null,
                [HOLD_ANNOTATION]: null,
              },
            },
            spec: {
              unschedulable: false,
              taints: (node.spec?.taints ?? []).filter((t) => !t.key.startsWith('fleetmedic.io/')),
            },
          },
        },
        mergePatch,
      );
    }
  });

  const quarantineInput = (over: Partial<Record<string, string>> = {}) => ({
    node: NODES.four,
    episodeKey: EPISODE,
    workflowId: WORKFLOW,
    runId: 'run-1',
    reason: 'reboot-node: XID 79',
    ...over,
  });

  describe('quarantineFailedNode', () => {
    it('quarantines a 4-GPU node, says its GPU count, and names the run in the ownership record', async () => {
      assert.deepEqual(await quarantine.quarantineFailedNode(quarantineInput()), {
        kind: 'quarantined',
        gpuCount: 4,
        preexistingCordon: false,
        episodes: 'new',
        hold: null,
      });
      assert.deepEqual(breaker.reported, [NODES.four]);
      const node = await read(NODES.four);
      assert.equal(node.spec?.unschedulable, true);
      assert.equal(node.metadata?.labels?.[QUARANTINED_LABEL], 'true');
      const record = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
      assert.equal(record.kind === 'ok' && record.record.runId, 'run-1');
      assert.equal(record.kind === 'ok' && record.record.workflowId, WORKFLOW);
    });

    it("reads back an earlier run's hold, and the new run takes the quarantine over", async () => {
      await quarantine.quarantineFailedNode(quarantineInput());
      await records.holdNode({
        node: NODES.four,
        workflowId: WORKFLOW,
        runId: 'run-1',
        by: 'alice',
        reason: 'RMA 77',
      });
      const again = await quarantine.quarantineFailedNode(
        quarantineInput({ runId: 'run-2', episodeKey: 'ffff@2026-11-28T00:00:00Z' }),
      );
      assert.deepEqual(again, {
        kind: 'quarantined',
        gpuCount: 4,
        preexistingCordon: false,
        episodes: 'new',
        hold: { by: 'alice', reason: 'RMA 77' },
      });
      const record = parseCordonRecord(await annotation(NODES.four, CORDON_ANNOTATION));
      assert.equal(record.kind === 'ok' && record.record.runId, 'run-2');
    });

    it('quarantines a node whose episode record is unreadable, and says so', async () => {
      await annotate(NODES.four, { [EPISODES_ANNOTATION]: '{"version":2,"episodes":[{"fingerprint":' });
      const r = await quarantine.quarantineFailedNode(quarantineInput());
      assert.equal(r.kind, 'quarantined');
      assert.equal(r.kind === 'quarantined' && r.episodes, 'unreadable');
      assert.equal((await read(NODES.four)).spec?.unschedulable, true);
    });

    it('stops at an episode recorded on the node: nothing reported, nothing changed', async () => {
      await records.recordEpisodes({ node: NODES.four, episodes: [EPISODE] });
      const before = await marks(NODES.four);
      assert.deepEqual(await quarantine.quarantineFailedNode(quarantineInput()), {
        kind: 'duplicate-episode',
      });
      assert.deepEqual(breaker.reported, []);
      assert.deepEqual(await marks(NODES.four), before);
      assert.equal(before.unschedulable, false);
    });

    it('says blocked when the breaker refuses, changing nothing', async () => {
      breaker.verdict = { allowed: false, reason: 'paused', detail: 'automation paused by bob' };
      assert.deepEqual(await quarantine.quarantineFailedNode(quarantineInput()), {
        kind: 'blocked',
        verdict: breaker.verdict,
      });
      assert.equal(await annotation(NODES.four, CORDON_ANNOTATION), undefined);
    });
  });

  describe('checkEpisode and recordEpisodes', () => {
    it('answers new, then handled once recorded, and new for a later episode of the fingerprint', async () => {
      const check = (episode: string) => records.checkEpisode({ node: NODES.plain, episode });
      assert.deepEqual(await check(EPISODE), { verdict: 'new' });
      assert.deepEqual(await records.recordEpisodes({ node: NODES.plain, episodes: [EPISODE, 'evt-9'] }), {
        node: NODES.plain,
        changed: true,
        entries: 2,
      });
      assert.deepEqual(await check(EPISODE), { verdict: 'handled' });
      assert.deepEqual(await check('evt-9'), { verdict: 'handled' });
      assert.deepEqual(await check('a1b2c3@2026-11-26T10:00:00Z'), { verdict: 'handled' });
      assert.deepEqual(await check('a1b2c3@2026-11-28T10:00:00Z'), { verdict: 'new' });
      // One entry per fingerprint: the later episode replaces the earlier.
      await records.recordEpisodes({ node: NODES.plain, episodes: ['a1b2c3@2026-11-28T10:00:00Z'] });
      const stored = parseEpisodeRecord(await annotation(NODES.plain, EPISODES_ANNOTATION));
      assert.ok(stored.ok);
      assert.deepEqual(
        stored.entries.map((e) => [e.fingerprint, e.startsAt]),
        [
          ['evt-9', null],
          ['a1b2c3', '2026-11-28T10:00:00Z'],
        ],
      );
    });

    it('reads and migrates the first format', async () => {
      const legacy = JSON.stringify([{ key: EPISODE, handledAt: '2026-11-27T11:00:00.000Z' }]);
      await annotate(NODES.plain, { [EPISODES_ANNOTATION]: legacy });
      assert.deepEqual(await records.checkEpisode({ node: NODES.plain, episode: EPISODE }), {
        verdict: 'handled',
      });
      await records.recordEpisodes({ node: NODES.plain, episodes: ['evt-1'] });
      const raw = await annotation(NODES.plain, EPISODES_ANNOTATION);
      assert.match(raw ?? '', /^\{"version":2,/);
      assert.deepEqual(await records.checkEpisode({ node: NODES.plain, episode: EPISODE }), {
        verdict: 'handled',
      });
    });

    it('answers unreadable for a damaged record, and never overwrites it', async () => {
      const damaged = '[{"key":"a1b2c3@2026-11-27T10:00:00Z"}]';
      await annotate(NODES.plain, { [EPISODES_ANNOTATION]: damaged });
      assert.deepEqual(await records.checkEpisode({ node: NODES.plain, episode: EPISODE }), {
        verdict: 'unreadable',
      });
      await assert.rejects(
        records.recordEpisodes({ node: NODES.plain, episodes: [EPISODE] }),
        (err: unknown) =>
          isFailure('InvalidAnnotation')(err) && /handled-episodes/.test((err as Error).message),
      );
      assert.equal(await annotation(NODES.plain, EPISODES_ANNOTATION), damaged);
    });

    it('leaves a node changed since its read to a retry (409), keeping the other write', async () => {
      await records.recordEpisodes({ node: NODES.plain, episodes: ['evt-1'] });
      let conflicts = 0;
      hook.beforeSend = async (req) => {
        if (String(req.getHttpMethod()) !== 'PATCH' || conflicts > 0) return;
        conflicts++;
        await records.recordEpisodes({ node: NODES.plain, episodes: ['evt-2'] });
      };
      await assert.rejects(
        records.recordEpisodes({ node: NODES.plain, episodes: ['evt-3'] }),
        (err: unknown) => !(err instanceof ApplicationFailure) && isApiError(err, 409),
      );
      hook.beforeSend = undefined;
      // Temporal's retry: read again, and both episodes are there.
      await records.recordEpisodes({ node: NODES.plain, episodes: ['evt-3'] });
      for (const episode of ['evt-1', 'evt-2', 'evt-3'])
        assert.deepEqual(await records.checkEpisode({ node: NODES.plain, episode }), { verdict: 'handled' });
    });
  });

  describe('holdNode, clearHold and releaseNode', () => {
    const holdInput = {
      node: NODES.plain,
      workflowId: WORKFLOW,
      runId: 'run-1',
      by: 'alice',
      reason: 'RMA 77',
    };

    it('holds idempotently, keeping the first time, and clears', async () => {
      assert.deepEqual(await records.holdNode(holdInput), { node: NODES.plain, changed: true });
      const first = parseHold(await annotation(NODES.plain, HOLD_ANNOTATION));
      assert.equal(first.kind, 'ok');
      assert.ok(first.kind === 'ok');
      assert.deepEqual(first.hold, {
        by: 'alice',
        reason: 'RMA 77',
        at: first.hold.at,
        workflowId: WORKFLOW,
        runId: 'run-1',
      });
      assert.ok(Date.now() - Date.parse(first.hold.at) < 60_000, first.hold.at);
      assert.deepEqual(await records.holdNode(holdInput), { node: NODES.plain, changed: false });
      assert.deepEqual(parseHold(await annotation(NODES.plain, HOLD_ANNOTATION)), first);
      // Another run's reject replaces the mark.
      assert.deepEqual(await records.holdNode({ ...holdInput, runId: 'run-2', by: 'bob' }), {
        node: NODES.plain,
        changed: true,
      });
      assert.deepEqual(await records.clearHold({ node: NODES.plain }), { node: NODES.plain, changed: true });
      assert.equal(await annotation(NODES.plain, HOLD_ANNOTATION), undefined);
      assert.deepEqual(await records.clearHold({ node: NODES.plain }), { node: NODES.plain, changed: false });
    });

    it('refuses to release a held node (readable or not) until the hold is cleared', async () => {
      await kubernetes.quarantineNode({ node: NODES.plain, workflowId: WORKFLOW, reason: 'XID 79' });
      await records.holdNode(holdInput);
      await assert.rejects(
        kubernetes.releaseNode({ node: NODES.plain, workflowId: WORKFLOW }),
        (err: unknown) =>
          isFailure('NodeHeld')(err) && /held by alice \(RMA 77\)/.test((err as Error).message),
      );
      await annotate(NODES.plain, { [HOLD_ANNOTATION]: '{"by":' });
      await assert.rejects(
        kubernetes.releaseNode({ node: NODES.plain, workflowId: WORKFLOW }),
        (err: unknown) =>
          isFailure('NodeHeld')(err) && /hold annotation unreadable/.test((err as Error).message),
      );
      const held = await read(NODES.plain);
      assert.equal(held.spec?.unschedulable, true);
      assert.equal(held.metadata?.labels?.[QUARANTINED_LABEL], 'true');
      // Clearing it (an operator's release, or mark-repaired) lets the release through.
      await records.clearHold({ node: NODES.plain });
      const released = await eventually('the release', () =>
        kubernetes.releaseNode({ node: NODES.plain, workflowId: WORKFLOW }).catch((err: unknown) => {
          // The node may still be settling: retryable, like Temporal would retry it.
          if (err instanceof ApplicationFailure && err.type === 'NodeNotReadyForRelease') return undefined;
          throw err;
        }),
      );
      assert.equal(released.released, true);
      assert.notEqual((await read(NODES.plain)).spec?.unschedulable, true, 'uncordoned');
    });
  });

  describe('refusals', () => {
    const ghost = 'fmtest-records-missing';
    const calls = (
      acts: { records: NodeRecordActivities; quarantine: QuarantineActivities },
      node: string,
    ) => [
      () => acts.records.checkEpisode({ node, episode: EPISODE }),
      () => acts.records.recordEpisodes({ node, episodes: [EPISODE] }),
      () => acts.records.holdNode({ node, workflowId: WORKFLOW, runId: 'r', by: 'alice', reason: 'RMA' }),
      () => acts.records.clearHold({ node }),
      () => acts.quarantine.quarantineFailedNode(quarantineInput({ node })),
    ];

    it('fails a missing node with a non-retryable NodeNotFound, reporting nothing to the breaker', async () => {
      for (const call of calls({ records, quarantine }, ghost))
        await assert.rejects(call(), isFailure('NodeNotFound'));
      assert.deepEqual(breaker.reported, []);
    });

    it('refuses a node of another cluster, changing nothing', async () => {
      const deps = { kc: stack.kc, clusterId: 'another-cluster' };
      const other = {
        records: createNodeRecordActivities(deps),
        quarantine: quarantineWith(deps),
      };
      const before = await marks(NODES.plain);
      for (const call of calls(other, NODES.plain)) await assert.rejects(call(), isFailure('WrongCluster'));
      assert.deepEqual(breaker.reported, []);
      assert.deepEqual(await marks(NODES.plain), before);
    });

    it('refuses invalid input, naming the field, the value and its type', async () => {
      await assert.rejects(
        records.checkEpisode({ node: 'Not_A_Name', episode: EPISODE }),
        (err: unknown) =>
          isFailure('InvalidInput')(err) &&
          /^checkEpisode: input\.node: must be a Kubernetes object name, got "Not_A_Name" \(string\)/.test(
            (err as Error).message,
          ),
      );
      await assert.rejects(
        records.recordEpisodes({ node: NODES.plain, episodes: [] }),
        (err: unknown) =>
          isFailure('InvalidInput')(err) &&
          /input\.episodes: .*got \[\] \(array\)/.test((err as Error).message),
      );
      await assert.rejects(
        records.holdNode({ ...{ node: NODES.plain, workflowId: WORKFLOW, runId: 'r', reason: 'x' }, by: '' }),
        (err: unknown) =>
          isFailure('InvalidInput')(err) && /input\.by: must not be empty/.test((err as Error).message),
      );
    });
  });
});
