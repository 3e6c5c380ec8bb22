import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hasErrorCode } from '../../src/errors.js';
import { kwokStagesDir, readKwokDefaultStages } from '../../src/stack/kwok-stages.js';
import {
  buildToolchain,
  cachedToolPath,
  resolveTool,
  resolveToolchain,
} from '../../src/toolchain/toolchain.js';
import {
  ETCD_VERSION,
  HELM_VERSION,
  KUBERNETES_VERSION,
  KWOK_VERSION,
  TEMPORAL_CLI_VERSION,
  TEMPORAL_SERVER_VERSION,
  TOOLS,
  toolSpec,
} from '../../src/toolchain/tools.js';

const fakeGo = fileURLToPath(new URL('./fake-go.mjs', import.meta.url));

/** What each real tool prints for its version command. */
const versionLines: Record<string, string> = {
  temporal: `temporal version ${TEMPORAL_CLI_VERSION} (Server 1.29.1, UI 2.42.1)`,
  kwok: `kwok version v${KWOK_VERSION} go1.26.8 (linux/amd64)`,
  kwokctl: `kwokctl version v${KWOK_VERSION} go1.26.8 (linux/amd64)`,
  etcd: `etcd Version: ${ETCD_VERSION}`,
  'kube-apiserver': `Kubernetes v${KUBERNETES_VERSION}`,
  'kube-controller-manager': `Kubernetes v${KUBERNETES_VERSION}`,
  'kube-scheduler': `Kubernetes v${KUBERNETES_VERSION}`,
  kubectl: `Client Version: v${KUBERNETES_VERSION}\nKustomize Version: v5.7.1`,
  helm: `v${HELM_VERSION}`,
  // `go install .../cmd/server` writes a binary named server.
  server: `temporal version ${TEMPORAL_SERVER_VERSION}`,
  'temporal-server': `temporal version ${TEMPORAL_SERVER_VERSION}`,
};

describe('toolchain', () => {
  let cacheDir: string;
  let goLog: string;
  let env: NodeJS.ProcessEnv;
  const dirs: string[] = [];

  beforeEach(async () => {
    cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-tc-'));
    dirs.push(cacheDir);
    goLog = path.join(cacheDir, 'go-calls.log');
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      FLEETMEDIC_GO: fakeGo,
      FAKE_GO_LOG: goLog,
      FAKE_GO_VERSIONS: JSON.stringify(versionLines),
    };
  });
  after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  async function goCalls(): Promise<string[][]> {
    const text = await fs.readFile(goLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[]);
  }
  const builds = async () => (await goCalls()).filter((c) => c[0] === 'install' || c[0] === 'build');

  it('builds every tool into the version-keyed cache, the Kubernetes binaries in one go build', async () => {
    const tools = await buildToolchain({ cacheDir, env });
    for (const spec of TOOLS) {
      assert.equal(tools[spec.name].path, cachedToolPath(cacheDir, spec));
      assert.equal(tools[spec.name].source, 'cache');
      assert.match(tools[spec.name].path, new RegExp(`${spec.name}-v${spec.version.replace(/\./g, '\\.')}`));
    }
    const calls = await builds();
    const kubeBuild = calls.find((c) => c.includes('k8s.io/kubernetes/cmd/kube-apiserver'));
    assert.ok(kubeBuild, 'no kubernetes build');
    for (const cmd of ['kube-controller-manager', 'kube-scheduler', 'kubectl']) {
      assert.ok(kubeBuild.includes(`k8s.io/kubernetes/cmd/${cmd}`), `${cmd} not built with kube-apiserver`);
    }
    assert.ok(
      kubeBuild.join(' ').includes(`gitVersion=v${KUBERNETES_VERSION}`),
      'no version stamp in ldflags',
    );
    const wrapperMod = await fs.readFile(
      path.join(cacheDir, 'toolchain', 'src', `kubernetes-v${KUBERNETES_VERSION}`, 'go.mod'),
      'utf8',
    );
    assert.match(wrapperMod, /k8s\.io\/api v0\.0\.0 => k8s\.io\/api v0\.35\.4/);
    assert.match(wrapperMod, /^go 1\.25\.0$/m);
  });

  it('builds helm with go install, stamped with its version and its Kubernetes minor; up does not need it', async () => {
    await buildToolchain({ cacheDir, env });
    const helmBuild = (await builds()).find((c) => c.at(-1) === `helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}`);
    assert.ok(helmBuild, 'no helm build');
    assert.equal(helmBuild[0], 'install');
    const ldflags = helmBuild[helmBuild.indexOf('-ldflags') + 1] ?? '';
    assert.match(ldflags, new RegExp(`internal/version\\.version=v${HELM_VERSION.replace(/\./g, '\\.')}`));
    assert.match(ldflags, /pkg\/chartutil\.k8sVersionMinor=37/);
    // The stack's tools resolve without helm: an older cache keeps working for `fleetmedic up`.
    await fs.rm(cachedToolPath(cacheDir, toolSpec('helm')));
    const stackTools = await resolveToolchain({ cacheDir, env });
    assert.equal(Object.keys(stackTools).includes('helm'), false);
    await assert.rejects(
      resolveTool('helm', { cacheDir, env }),
      /helm v3\.22\.0 is not built yet.*FLEETMEDIC_HELM_BIN/,
    );
  });

  it("copies kwok's default stages from the kwok module into the cache, once", async () => {
    await buildToolchain({ cacheDir, env });
    const stages = await readKwokDefaultStages(cacheDir);
    assert.deepEqual(
      stages.map((s) => s.metadata.name),
      ['node-initialize', 'node-heartbeat-with-lease', 'pod-ready', 'pod-complete', 'pod-delete'],
    );
    const downloads = async () =>
      (await goCalls()).filter((c) => c[0] === 'mod' && c.at(-1)?.startsWith('sigs.k8s.io/kwok@')).length;
    const before = await downloads();
    await buildToolchain({ cacheDir, env });
    assert.equal(await downloads(), before, 'the stages were copied again');
    await fs.rm(path.join(kwokStagesDir(cacheDir), 'pod-ready.yaml'));
    await assert.rejects(readKwokDefaultStages(cacheDir), /pod-ready\.yaml is missing.*fleetmedic toolchain/);
  });

  it('is idempotent: a warm cache builds nothing', async () => {
    await buildToolchain({ cacheDir, env });
    const before = (await builds()).length;
    await buildToolchain({ cacheDir, env });
    assert.equal((await builds()).length, before);
  });

  it('rebuilds a truncated or wrong-version cached binary', async () => {
    await buildToolchain({ cacheDir, env });
    const apiserver = cachedToolPath(cacheDir, toolSpec('kube-apiserver'));
    await fs.writeFile(apiserver, '#!/bin/sh\necho Kubernetes v1.30.0\n', { mode: 0o755 });
    const etcd = cachedToolPath(cacheDir, toolSpec('etcd'));
    await fs.writeFile(etcd, '\x7fELF\x02\x01', { mode: 0o755 }); // truncated binary
    const before = (await builds()).length;
    const logs: string[] = [];
    await buildToolchain({ cacheDir, env, log: (l) => logs.push(l) });
    const rebuilt = (await builds()).slice(before);
    assert.equal(rebuilt.length, 2, `expected 2 rebuilds, got ${JSON.stringify(rebuilt)}`);
    assert.ok(logs.some((l) => l.includes('kube-apiserver: cached binary rejected')));
    assert.equal((await resolveTool('kube-apiserver', { cacheDir, env })).path, apiserver);
  });

  it('uses a binary named by its environment variable only when its version check passes', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-tc-bin-'));
    dirs.push(dir);
    const good = path.join(dir, 'kubectl-good');
    const bad = path.join(dir, 'kubectl-bad');
    await fs.writeFile(good, `#!/bin/sh\necho 'Client Version: v${KUBERNETES_VERSION}'\n`, { mode: 0o755 });
    await fs.writeFile(bad, "#!/bin/sh\necho 'Client Version: v1.29.0'\n", { mode: 0o755 });

    const resolved = await resolveTool('kubectl', {
      cacheDir,
      env: { ...env, FLEETMEDIC_KUBECTL_BIN: good },
    });
    assert.deepEqual([resolved.path, resolved.source], [good, 'env']);
    await assert.rejects(
      resolveTool('kubectl', { cacheDir, env: { ...env, FLEETMEDIC_KUBECTL_BIN: bad } }),
      (err: Error) =>
        hasErrorCode(err, 'TOOLCHAIN') &&
        err.message.includes('FLEETMEDIC_KUBECTL_BIN') &&
        err.message.includes('v1.29.0'),
    );
    await buildToolchain({ cacheDir, env: { ...env, FLEETMEDIC_KUBECTL_BIN: good } });
    const kubeBuild = (await builds()).find((c) => c.includes('k8s.io/kubernetes/cmd/kube-apiserver'));
    assert.ok(
      kubeBuild && !kubeBuild.includes('k8s.io/kubernetes/cmd/kubectl'),
      'kubectl was built despite the override',
    );
  });

  it('never uses a binary that merely is on PATH', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-tc-path-'));
    dirs.push(dir);
    await fs.writeFile(
      path.join(dir, 'kubectl'),
      `#!/bin/sh\necho 'Client Version: v${KUBERNETES_VERSION}'\n`,
      { mode: 0o755 },
    );
    await assert.rejects(
      resolveTool('kubectl', { cacheDir, env: { ...env, PATH: `${dir}:${env.PATH}` } }),
      /kubectl v1\.35\.4 is not built yet.*fleetmedic toolchain/,
    );
  });

  it('says what to install when Go is missing', async () => {
    await assert.rejects(
      buildToolchain({ cacheDir, env: { ...env, FLEETMEDIC_GO: path.join(cacheDir, 'no-such-go') } }),
      (err: Error) =>
        hasErrorCode(err, 'TOOLCHAIN') &&
        /Go >= 1\.26 is needed/.test(err.message) &&
        err.message.includes('FLEETMEDIC_KUBE_APISERVER_BIN'),
    );
  });
});
