import type {
  KubeConfig,
  V1ConfigMap,
  V1Deployment,
  V1Node,
  V1ValidatingAdmissionPolicy,
} from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { isSimulatedCluster } from '../../src/stack/sim-cluster.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { assertMetricsHost } from '../../src/webhook/server.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { clients, eventually, tempNamespace } from '../helpers/k8s.js';
import { TEST_STACK_ENV, useTestStack, type TestStack } from '../helpers/stack.js';
import { TEST_SETTINGS_NAMESPACE_ENV, TEST_WORKER_KUBECONFIG_ENV } from '../helpers/workers.js';
import {
  canI,
  deleteObject,
  kubeRequest,
  PRODUCTION_VALUES,
  renderChart,
  serverSideApply,
  serviceAccountKubeConfig,
  find,
  type KubeResponse,
  type Rendered,
} from './chart.js';

/** The kinds that make up the chart's identities and their limits; applied for real. */
const RBAC_KINDS = new Set([
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
]);

/** The chart's identities, and one the chart gives nothing. */
type Identity = 'worker' | 'agent' | 'webhook' | 'gateway' | 'nobody';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REMEDIATION_E2E = fileURLToPath(new URL('../workflows/remediation.e2e.test.ts', import.meta.url));

// The chart's RBAC and admission policy, applied to the embedded API server and exercised with the
// ServiceAccount tokens a pod would get: an identity without rights is refused first (so a later
// "allowed" means the chart's rules, not an open authorizer), then each process's rights, the
// worker's node patches under the admission policy, and the whole remediation e2e suite run with the
// worker's token instead of the admin's client certificate.
describe("Helm chart: RBAC and admission policy enforced, and the remediation suite under the worker's token", () => {
  let stack: TestStack;
  let release: string;
  let ns: string;
  const cleanup: Array<() => Promise<void>> = [];
  let kcs: Record<Identity, KubeConfig>;
  let objects: Rendered[];
  let inferenceNs: string;
  let node: string;

  before(async () => {
    stack = await useTestStack();
    const home = await tempNamespace(stack.kc, 'fmrbac');
    cleanup.push(home.remove);
    ns = home.name;
    const inference = await tempNamespace(stack.kc, 'fminfer');
    cleanup.push(inference.remove);
    inferenceNs = inference.name;
    const drill = await tempNamespace(stack.kc, 'fmdrill');
    cleanup.push(drill.remove);
    release = `fleetmedic-${ns.slice(-6)}`;
    objects = await renderChart({
      release,
      namespace: ns,
      valuesFiles: [PRODUCTION_VALUES],
      set: { 'inference.namespace': inference.name, 'drill.namespace': drill.name },
    });
    for (const object of objects.filter((o) => RBAC_KINDS.has(o.kind ?? ''))) {
      // Cluster-scoped objects and the Role in the Events namespace outlive the test namespaces.
      if (!object.metadata?.namespace || object.metadata.namespace === 'default') {
        cleanup.push(() => deleteObject(stack.kc, object));
      }
      const res = await serverSideApply(stack.kc, object, { dryRun: false });
      assert.ok(
        res.status < 300,
        `${object.kind} ${object.metadata?.name}: HTTP ${res.status} ${res.message}`,
      );
    }
    await clients(stack.kc).core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'nobody' } },
    });
    const accounts: Record<Identity, string> = {
      worker: `${release}-worker`,
      agent: `${release}-node-agent`,
      webhook: `${release}-webhook`,
      gateway: `${release}-gateway`,
      nobody: 'nobody',
    };
    const made = await Promise.all(
      Object.entries(accounts).map(async ([key, sa]) => [
        key,
        (await serviceAccountKubeConfig(stack.kc, ns, sa)).kc,
      ]),
    );
    kcs = Object.fromEntries(made) as Record<Identity, KubeConfig>;
    // A node of its own: the patches below must not race the remediation suite's nodes.
    const manifest = simNodeManifest(95, stack.state.clusterId);
    node = manifest.metadata!.name!;
    await clients(stack.kc).core.createNode({ body: manifest });
    cleanup.push(async () => {
      await clients(stack.kc)
        .core.deleteNode({ name: node })
        .catch(() => {});
    });
  });

  after(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
  });

  let workerFile: string | undefined;
  /** The worker's token as a kubeconfig file, for processes of their own. */
  async function workerKubeconfigFile(): Promise<string> {
    if (workerFile) return workerFile;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-sa-'));
    cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
    workerFile = path.join(dir, 'worker.kubeconfig');
    await fs.writeFile(workerFile, kcs.worker.exportConfig(), { mode: 0o600 });
    return workerFile;
  }

  const nodePath = () => `/api/v1/nodes/${node}`;
  function patchNode(kc: KubeConfig, body: unknown, dryRun = false): Promise<KubeResponse> {
    return kubeRequest(
      kc,
      'PATCH',
      `${nodePath()}${dryRun ? '?dryRun=All' : ''}`,
      body,
      'application/merge-patch+json',
    );
  }
  async function readNode(): Promise<V1Node> {
    return clients(stack.kc).core.readNode({ name: node });
  }

  it('refuses an identity the chart gives no rights (403): RBAC is enforced on this API server', async () => {
    const res = await kubeRequest(kcs.nobody, 'GET', nodePath());
    assert.equal(res.status, 403, res.message);
    assert.match(res.message, /system:serviceaccount:fmrbac-\w+:nobody/);
    assert.equal(await canI(kcs.nobody, { verb: 'list', resource: 'pods' }), false);
    // The same request, once the chart's rules apply (RBAC caches settle within moments).
    await eventually('the worker allowed to read the node', async () =>
      (await kubeRequest(kcs.worker, 'GET', nodePath())).status === 200 ? true : undefined,
    );
  });

  it("gives the worker's ServiceAccount what the remediation calls, and no secrets, no exec", async () => {
    const allowed: Array<Parameters<typeof canI>[1]> = [
      { verb: 'patch', resource: 'nodes' },
      { verb: 'list', resource: 'nodes' },
      { verb: 'list', resource: 'pods' },
      { verb: 'delete', resource: 'pods', namespace: 'any' },
      { verb: 'create', resource: 'pods', subresource: 'eviction', namespace: 'any' },
      { verb: 'list', resource: 'poddisruptionbudgets', group: 'policy', namespace: 'any' },
      { verb: 'list', resource: 'daemonsets', group: 'apps' },
      { verb: 'get', resource: 'namespaces' },
      { verb: 'create', resource: 'events', namespace: 'default' },
      { verb: 'update', resource: 'configmaps', namespace: ns },
    ];
    const forbidden: Array<Parameters<typeof canI>[1]> = [
      { verb: 'get', resource: 'secrets', namespace: ns },
      { verb: 'list', resource: 'secrets' },
      { verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'any' },
      { verb: 'create', resource: 'pods', subresource: 'attach', namespace: 'any' },
      { verb: 'delete', resource: 'nodes' },
      { verb: 'update', resource: 'nodes', subresource: 'status' },
      { verb: 'create', resource: 'pods', namespace: 'any' },
      { verb: 'create', resource: 'deployments', group: 'apps', namespace: 'any' },
      { verb: 'create', resource: 'events', namespace: 'any' },
      { verb: 'update', resource: 'configmaps', namespace: 'kube-system' },
      { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
    ];
    for (const a of allowed)
      assert.equal(await canI(kcs.worker, a), true, `not allowed: ${JSON.stringify(a)}`);
    for (const a of forbidden)
      assert.equal(await canI(kcs.worker, a), false, `allowed: ${JSON.stringify(a)}`);

    // What `fleetmedic worker` reads at start: the simulation marker here, a 404 on a real cluster
    // (no marker namespace), never a 403 that would stop it.
    assert.equal(await isSimulatedCluster(kcs.worker), true);
    const noMarker = await kubeRequest(
      kcs.worker,
      'GET',
      `/api/v1/namespaces/${ns}-none/configmaps/fleetmedic-simulation`,
    );
    assert.equal(noMarker.status, 404, noMarker.message);
    assert.equal(
      await canI(kcs.worker, { verb: 'get', resource: 'configmaps', namespace: 'kube-system' }),
      false,
    );

    // And the real requests: reading a Secret is forbidden, listing them too.
    await clients(stack.kc).core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'temporal-api-key' }, stringData: { 'api-key': 'not for the worker' } },
    });
    const read = await kubeRequest(kcs.worker, 'GET', `/api/v1/namespaces/${ns}/secrets/temporal-api-key`);
    assert.equal(read.status, 403, read.message);
    assert.equal((await kubeRequest(kcs.worker, 'GET', '/api/v1/secrets')).status, 403);
  });

  it('lets the node agent and the webhook get a node, not list or patch one; the gateway watches pods only where the inference runs', async () => {
    for (const kc of [kcs.agent, kcs.webhook]) {
      assert.equal((await kubeRequest(kc, 'GET', nodePath())).status, 200);
      assert.equal((await kubeRequest(kc, 'GET', '/api/v1/nodes')).status, 403);
      assert.equal((await patchNode(kc, { spec: { unschedulable: true } })).status, 403);
      assert.equal((await kubeRequest(kc, 'GET', `/api/v1/namespaces/${ns}/secrets`)).status, 403);
    }
    assert.equal(
      (await kubeRequest(kcs.gateway, 'GET', `/api/v1/namespaces/${inferenceNs}/pods`)).status,
      200,
    );
    assert.equal((await kubeRequest(kcs.gateway, 'GET', `/api/v1/namespaces/${ns}/pods`)).status, 403);
    assert.equal((await kubeRequest(kcs.gateway, 'GET', nodePath())).status, 403);
  });

  it("gives the gateway's ServiceAccount exactly what `gateway serve --deployment` calls: get on its Deployment, list and watch on pods there", async () => {
    const inference = find<V1Deployment>(objects, 'Deployment', '-inference').metadata!.name!;
    const allowed: Array<Parameters<typeof canI>[1]> = [
      { verb: 'get', resource: 'deployments', group: 'apps', namespace: inferenceNs, name: inference },
      { verb: 'list', resource: 'pods', namespace: inferenceNs },
      { verb: 'watch', resource: 'pods', namespace: inferenceNs },
    ];
    const forbidden: Array<Parameters<typeof canI>[1]> = [
      // Its Deployment: read only, and only that one.
      { verb: 'get', resource: 'deployments', group: 'apps', namespace: inferenceNs, name: 'other' },
      { verb: 'get', resource: 'deployments', group: 'apps', namespace: inferenceNs },
      { verb: 'list', resource: 'deployments', group: 'apps', namespace: inferenceNs },
      { verb: 'watch', resource: 'deployments', group: 'apps', namespace: inferenceNs },
      { verb: 'patch', resource: 'deployments', group: 'apps', namespace: inferenceNs, name: inference },
      { verb: 'update', resource: 'deployments', group: 'apps', namespace: inferenceNs, name: inference },
      { verb: 'delete', resource: 'deployments', group: 'apps', namespace: inferenceNs, name: inference },
      {
        verb: 'update',
        resource: 'deployments',
        group: 'apps',
        subresource: 'scale',
        namespace: inferenceNs,
        name: inference,
      },
      // Pods: the watch only; no get (the informer never needs it), no change, no exec, no logs.
      { verb: 'get', resource: 'pods', namespace: inferenceNs, name: 'any' },
      { verb: 'create', resource: 'pods', namespace: inferenceNs },
      { verb: 'delete', resource: 'pods', namespace: inferenceNs, name: 'any' },
      { verb: 'patch', resource: 'pods', namespace: inferenceNs, name: 'any' },
      { verb: 'create', resource: 'pods', subresource: 'eviction', namespace: inferenceNs, name: 'any' },
      { verb: 'create', resource: 'pods', subresource: 'exec', namespace: inferenceNs, name: 'any' },
      { verb: 'get', resource: 'pods', subresource: 'log', namespace: inferenceNs, name: 'any' },
      // Nowhere else, and nothing else where the inference runs.
      { verb: 'list', resource: 'pods', namespace: ns },
      { verb: 'list', resource: 'pods' },
      { verb: 'list', resource: 'services', namespace: inferenceNs },
      { verb: 'list', resource: 'endpoints', namespace: inferenceNs },
      { verb: 'list', resource: 'endpointslices', group: 'discovery.k8s.io', namespace: inferenceNs },
      { verb: 'get', resource: 'secrets', namespace: inferenceNs, name: 'any' },
      { verb: 'list', resource: 'secrets', namespace: inferenceNs },
      { verb: 'get', resource: 'configmaps', namespace: inferenceNs, name: 'any' },
      { verb: 'get', resource: 'nodes', name: node },
    ];
    for (const a of allowed)
      assert.equal(await canI(kcs.gateway, a), true, `not allowed: ${JSON.stringify(a)}`);
    for (const a of forbidden)
      assert.equal(await canI(kcs.gateway, a), false, `allowed: ${JSON.stringify(a)}`);
  });

  it(
    "serves `fleetmedic gateway serve` with the chart's arguments under the gateway's token: its Deployment read, a new Ready pod routed",
    {
      timeout: 3 * 60_000,
    },
    async () => {
      const gatewayDeployment = find<V1Deployment>(objects, 'Deployment', '-gateway');
      const container = gatewayDeployment.spec!.template.spec!.containers[0]!;
      const rendered = container.args ?? [];
      const value = (flag: string) => rendered[rendered.indexOf(flag) + 1] ?? '';
      // The chart's inference Deployment, with no replicas (they would ask for GPUs): the gateway
      // reads its selector; the pod below matches it.
      const inference = structuredClone(find<V1Deployment>(objects, 'Deployment', '-inference'));
      assert.equal(value('--deployment'), `${inferenceNs}/${inference.metadata!.name!}`);
      inference.spec!.replicas = 0;
      const applied = await serverSideApply(stack.kc, inference, { dryRun: false });
      assert.ok(applied.status < 300, `HTTP ${applied.status} ${applied.message}`);

      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-gateway-'));
      cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
      // Outside a pod there is no mounted ServiceAccount: the same token as a kubeconfig file stands
      // in for FLEETMEDIC_IN_CLUSTER=true (tests bind loopback only, and any free port).
      const gatewayFile = path.join(dir, 'gateway.kubeconfig');
      await fs.writeFile(gatewayFile, kcs.gateway.exportConfig(), { mode: 0o600 });
      const local: Record<string, string> = { '--host': '127.0.0.1', '--port': '0' };
      const args = rendered.map((a, i) => local[rendered[i - 1] ?? ''] ?? a);
      assert.ok(args.includes('--any-address'), 'pod IPs are not loopback on a real cluster');
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_TEST_CONTEXT: undefined };
      for (const key of Object.keys(env)) if (key.startsWith('FLEETMEDIC_')) delete env[key];
      const gateway = execa(process.execPath, ['--import', 'tsx', CLI, ...args], {
        env: {
          ...env,
          FLEETMEDIC_STATE_DIR: dir,
          FLEETMEDIC_KUBECONFIG: gatewayFile,
          FLEETMEDIC_LOG_LEVEL: 'warn',
        },
        extendEnv: false,
        reject: false,
        all: true,
        timeout: 2 * 60_000,
      });
      let output = '';
      try {
        const [url, watching] = await new Promise<[string, string]>((resolve, reject) => {
          gateway.all?.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const m = /gateway on (http:\/\/127\.0\.0\.1:\d+): 0 replica\(s\) now, watching (\S+)\n/.exec(
              output,
            );
            if (m) resolve([m[1]!, m[2]!]);
          });
          void gateway.then((r) =>
            reject(new Error(`fleetmedic gateway serve exited (${r.exitCode}):\n${output}`)),
          );
        });
        // It read its Deployment under the gateway's token (a 403 there would have stopped it).
        assert.equal(watching, value('--deployment'));
        const health = await fetch(`${url}${container.readinessProbe!.httpGet!.path}`);
        assert.equal(health.status, 200);
        // A pod of the Deployment, created after the gateway started: it arrives through the watch
        // once it is Ready (kwok runs it on this file's node).
        const labels = inference.spec!.selector.matchLabels!;
        await clients(stack.kc).core.createNamespacedPod({
          namespace: inferenceNs,
          body: {
            metadata: { name: 'replica-0', labels },
            spec: { nodeName: node, containers: [{ name: 'server', image: 'llama.cpp' }] },
          },
        });
        const replicas = await eventually(
          'the new pod routed by the gateway',
          async () => {
            const res = await fetch(`${url}/v1/gateway/replicas`);
            const body = (await res.json()) as { replicas: Array<{ id: string; url: string }> };
            return body.replicas.some((r) => r.id === 'replica-0') ? body.replicas : undefined;
          },
          60_000,
        );
        assert.match(
          replicas.find((r) => r.id === 'replica-0')!.url,
          new RegExp(`:${value('--deployment-port')}$`),
        );
        assert.doesNotMatch(output, /pod watch failed|forbidden/i);
      } finally {
        gateway.kill('SIGTERM');
        await gateway;
        await clients(stack.kc)
          .core.deleteNamespacedPod({ name: 'replica-0', namespace: inferenceNs, gracePeriodSeconds: 0 })
          .catch(() => {});
      }
    },
  );

  it("lets the worker change only the cordon, fleetmedic's taint, labels and annotations on a node; the admin is not limited", async () => {
    // The policy takes effect a moment after it is created: wait until a dry-run patch is refused.
    const otherLabel = { metadata: { labels: { team: 'ml' } } };
    const refusal = await eventually('the admission policy enforced', async () => {
      const res = await patchNode(kcs.worker, otherLabel, true);
      return res.status === 403 && /ValidatingAdmissionPolicy/.test(res.message) ? res : undefined;
    });
    assert.match(refusal.message, /may change only fleetmedic\.io\/ labels/);
    const policies = await kubeRequest(
      stack.kc,
      'GET',
      '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
    );
    const policy = (policies.body as { items: V1ValidatingAdmissionPolicy[] }).items.find((p) =>
      p.metadata?.name?.startsWith(release),
    );
    assert.deepEqual(
      policy?.status?.typeChecking?.expressionWarnings ?? [],
      [],
      'CEL type-checking warnings',
    );

    const before = await readNode();
    const quarantine = { key: 'fleetmedic.io/quarantine', value: 'test', effect: 'NoSchedule' };
    // What a quarantine writes (src/k8s/node-ownership.ts): allowed.
    const quarantined = await patchNode(kcs.worker, {
      metadata: {
        resourceVersion: before.metadata?.resourceVersion,
        labels: { 'fleetmedic.io/quarantined': 'true' },
        annotations: { 'fleetmedic.io/cordon': '{"workflowId":"test"}' },
      },
      spec: { unschedulable: true, taints: [...(before.spec?.taints ?? []), quarantine] },
    });
    assert.equal(quarantined.status, 200, quarantined.message);
    const q = await readNode();
    assert.equal(q.spec?.unschedulable, true);
    assert.equal(q.metadata?.labels?.['fleetmedic.io/quarantined'], 'true');

    // Each refused patch is built from the node as it is now: the node lifecycle controller adds its
    // own taint (node.kubernetes.io/unschedulable) after the cordon, and a list that dropped it would
    // be refused for that instead.
    const withoutOurs = (n: V1Node) => (n.spec?.taints ?? []).filter((t) => t.key !== quarantine.key);
    const refused: Array<[string, (n: V1Node) => unknown, RegExp]> = [
      ['another label', () => otherLabel, /fleetmedic\.io\/ labels/],
      [
        'removing a label',
        () => ({ metadata: { labels: { 'kubernetes.io/hostname': null } } }),
        /fleetmedic\.io\/ labels/,
      ],
      [
        'another annotation',
        () => ({ metadata: { annotations: { 'example.com/owner': 'x' } } }),
        /annotations/,
      ],
      [
        'another taint',
        (n) => ({
          spec: { taints: [...(n.spec?.taints ?? []), { key: 'example.com/broken', effect: 'NoSchedule' }] },
        }),
        /only its fleetmedic\.io\/quarantine taint/,
      ],
      [
        'a NoExecute quarantine',
        (n) => ({ spec: { taints: [...withoutOurs(n), { ...quarantine, effect: 'NoExecute' }] } }),
        /NoSchedule only/,
      ],
      [
        'the provider ID',
        () => ({ spec: { providerID: 'kwok://elsewhere' } }),
        /may change only spec\.unschedulable/,
      ],
    ];
    for (const [what, body, message] of refused) {
      const res = await patchNode(kcs.worker, body(await readNode()));
      assert.equal(res.status, 403, `${what}: HTTP ${res.status} ${res.message}`);
      assert.match(res.message, message, what);
    }
    const unchanged = await readNode();
    assert.equal(unchanged.metadata?.labels?.team, undefined);
    assert.equal(unchanged.metadata?.labels?.['kubernetes.io/hostname'], node);
    assert.equal(unchanged.metadata?.annotations?.['example.com/owner'], undefined);
    assert.deepEqual(
      unchanged.spec?.taints
        ?.filter((t) => t.key.startsWith('example.com') || t.key === quarantine.key)
        .map((t) => ({ key: t.key, value: t.value, effect: t.effect })),
      [quarantine],
    );
    assert.equal(unchanged.spec?.providerID, before.spec?.providerID);

    // Release, as the worker does it (from the node read, with its resourceVersion): allowed.
    const current = await readNode();
    const released = await patchNode(kcs.worker, {
      metadata: {
        resourceVersion: current.metadata?.resourceVersion,
        labels: { 'fleetmedic.io/quarantined': null },
        annotations: { 'fleetmedic.io/cordon': null },
      },
      spec: { unschedulable: false, taints: withoutOurs(current).length > 0 ? withoutOurs(current) : null },
    });
    assert.equal(released.status, 200, released.message);
    // The policy matches the worker's identity only: the admin may set any label.
    await clients(stack.kc).core.patchNode({ name: node, body: otherLabel }, mergePatch);
    assert.equal((await readNode()).metadata?.labels?.team, 'ml');
  });

  it(
    "runs the remediation end-to-end suite with the worker's ServiceAccount token, under the admission policy",
    {
      timeout: 6 * 60_000,
    },
    async () => {
      const kubeconfig = await workerKubeconfigFile();
      // The file is the worker's identity: the same token is refused a Secret.
      const fromFile = loadKubeConfig(kubeconfig);
      assert.equal(fromFile.getCurrentUser()?.name, `${ns}:${release}-worker`);
      assert.equal((await kubeRequest(fromFile, 'GET', `/api/v1/namespaces/${ns}/secrets`)).status, 403);
      const started = Date.now();
      const child = await execa(
        process.execPath,
        ['--import', 'tsx', '--test', '--test-reporter=spec', REMEDIATION_E2E],
        {
          // Not NODE_TEST_CONTEXT: with it, the child's test runner would take itself for a subtest
          // of this one and run nothing.
          env: {
            ...process.env,
            NODE_TEST_CONTEXT: undefined,
            [TEST_STACK_ENV]: stack.config.stateDir,
            [TEST_WORKER_KUBECONFIG_ENV]: kubeconfig,
            // The chart's worker keeps the fleet budget's settings in its release namespace.
            [TEST_SETTINGS_NAMESPACE_ENV]: ns,
          },
          extendEnv: false,
          reject: false,
          all: true,
          // About 30 s here; a suite that hangs (a refused call retried) fails here instead.
          timeout: 5 * 60_000,
        },
      );
      const output = child.all ?? '';
      const summary = output
        .split('\n')
        .filter((l) => /^ℹ (tests|pass|fail|duration_ms)|^\s*[✔✖]/.test(l))
        .join('\n');
      process.stderr.write(
        `remediation e2e under the worker's token (${((Date.now() - started) / 1000).toFixed(0)} s):\n${summary}\n`,
      );
      assert.equal(child.exitCode, 0, output.split('\n').slice(-80).join('\n'));
      assert.match(output, /^ℹ fail 0$/m);
      assert.doesNotMatch(output, /^ℹ pass 0$/m);
    },
  );
  it(
    "starts `fleetmedic worker`, the image's command, with the worker's token: marker read, nodes listed for metrics",
    {
      timeout: 5 * 60_000,
    },
    async () => {
      const kubeconfig = await workerKubeconfigFile();
      const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-worker-'));
      cleanup.push(() => fs.rm(stateDir, { recursive: true, force: true }));
      // A cluster ID and queue of its own: its fleet budget must not meet the other suites'.
      const clusterId = `${ns}-w`;
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_TEST_CONTEXT: undefined };
      for (const key of Object.keys(env)) if (key.startsWith('FLEETMEDIC_')) delete env[key];
      const worker = execa(process.execPath, ['--import', 'tsx', CLI, 'worker'], {
        env: {
          ...env,
          FLEETMEDIC_STATE_DIR: stateDir,
          FLEETMEDIC_KUBECONFIG: kubeconfig,
          FLEETMEDIC_TEMPORAL_ADDRESS: stack.state.temporal.address,
          FLEETMEDIC_CLUSTER_ID: clusterId,
          FLEETMEDIC_TASK_QUEUE: `fleetmedic-${clusterId}`,
          FLEETMEDIC_SETTINGS_NAMESPACE: ns,
          FLEETMEDIC_METRICS_PORT: '0',
          FLEETMEDIC_LOG_LEVEL: 'warn',
        },
        extendEnv: false,
        reject: false,
        all: true,
        timeout: 4 * 60_000,
      });
      const temporal = await Connection.connect({ address: stack.state.temporal.address });
      try {
        let output = '';
        // The worker bundles the workflows at start (no prebuilt bundle here): up to a minute or two.
        const metricsUrl = await new Promise<string>((resolve, reject) => {
          worker.all?.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const m = /control worker for cluster .*metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(
              output,
            );
            if (m) resolve(m[1]!);
          });
          void worker.then((r) => reject(new Error(`fleetmedic worker exited (${r.exitCode}):\n${output}`)));
        });
        const scrape = await fetch(metricsUrl);
        assert.equal(scrape.status, 200);
        const text = await scrape.text();
        assert.match(text, /^fleetmedic_nodes_quarantined \d+$/m);
        assert.doesNotMatch(text, /fleetmedic_metrics_scrape_errors_total\{source="nodes"\} [1-9]/);
      } finally {
        worker.kill('SIGTERM');
        await worker;
        await new Client({ connection: temporal }).workflow
          .getHandle(fleetBudgetWorkflowId(clusterId))
          .terminate('test finished')
          .catch(() => {});
        await temporal.close();
      }
    },
  );
  it(
    "serves `fleetmedic webhook serve` with the chart's arguments and files under the webhook's token: a node lookup answers",
    {
      timeout: 3 * 60_000,
    },
    async () => {
      const deployment = find<V1Deployment>(objects, 'Deployment', '-webhook');
      const container = deployment.spec!.template.spec!.containers[0]!;
      const rendered = container.args ?? [];
      const value = (flag: string) => rendered[rendered.indexOf(flag) + 1] ?? '';
      // On the pod IP, as rendered: the webhook's own start-up checks accept the address and the metrics listener.
      assertMetricsHost(value('--metrics-host'), rendered.includes('--allow-unauthenticated-metrics'));
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-webhook-'));
      cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
      const rules = find<V1ConfigMap>(objects, 'ConfigMap', '-webhook-rules').data!['rules.yaml']!;
      await fs.writeFile(path.join(dir, 'rules.yaml'), rules);
      await fs.writeFile(path.join(dir, 'tokens'), 'alertmanager test-token-0123456789abcdef alerts\n', {
        mode: 0o600,
      });
      const webhookFile = path.join(dir, 'webhook.kubeconfig');
      await fs.writeFile(webhookFile, kcs.webhook.exportConfig(), { mode: 0o600 });
      // The same arguments, with the mounted files' paths and (tests bind loopback only) 127.0.0.1.
      const local: Record<string, string> = {
        '--rules': path.join(dir, 'rules.yaml'),
        '--token-file': path.join(dir, 'tokens'),
        '--host': '127.0.0.1',
        '--port': '0',
        '--metrics-host': '127.0.0.1',
        '--metrics-port': '0',
      };
      const args = rendered.map((a, i) => local[rendered[i - 1] ?? ''] ?? a);
      const clusterId = container.env?.find((e) => e.name === 'FLEETMEDIC_CLUSTER_ID')?.value ?? '';
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_TEST_CONTEXT: undefined };
      for (const key of Object.keys(env)) if (key.startsWith('FLEETMEDIC_')) delete env[key];
      const webhook = execa(process.execPath, ['--import', 'tsx', CLI, ...args], {
        env: {
          ...env,
          FLEETMEDIC_STATE_DIR: dir,
          FLEETMEDIC_KUBECONFIG: webhookFile,
          FLEETMEDIC_TEMPORAL_ADDRESS: stack.state.temporal.address,
          FLEETMEDIC_CLUSTER_ID: clusterId,
          FLEETMEDIC_LOG_LEVEL: 'warn',
        },
        extendEnv: false,
        reject: false,
        all: true,
        timeout: 2 * 60_000,
      });
      try {
        let output = '';
        const url = await new Promise<string>((resolve, reject) => {
          webhook.all?.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const m = /webhook for cluster \S+ on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
            if (m) resolve(m[1]!);
          });
          void webhook.then((r) =>
            reject(new Error(`fleetmedic webhook exited (${r.exitCode}):\n${output}`)),
          );
        });
        // A dry run evaluates the rollout's node selector, so the webhook reads the node as its own identity.
        const res = await fetch(`${url}/v1/alerts?dryRun=true`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer test-token-0123456789abcdef',
            'content-type': 'application/json',
          },
          body: JSON.stringify({
            source: 'chart-test',
            alerts: [{ alertName: 'GpuXidCritical', node, xid: 79, labels: { severity: 'critical' } }],
          }),
        });
        const answer = await res.text();
        assert.equal(res.status, 200, answer);
        // Known only from the node's labels: the lookup read it (a 403 would be a 503, a 404 "does not exist").
        assert.match(answer, new RegExp(`node ${node} belongs to cluster ${stack.state.clusterId}`), answer);
      } finally {
        webhook.kill('SIGTERM');
        await webhook;
      }
    },
  );
});
