/**
 * The Dockerfile: its properties (multi-stage, an official Debian Node image of a supported major,
 * non-root, production dependencies only, the workflow bundle prebuilt, a healthcheck), then its build
 * and start steps carried out without Docker (there is no engine here): each stage's COPY, WORKDIR,
 * ENV and RUN steps in a temporary root, and its ENTRYPOINT + CMD started as a non-root user on a
 * supported Node against the test stack, where the worker must serve workflows from the prebuilt
 * bundle and the image's HEALTHCHECK must pass.
 */
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { OperatorClient } from '../../src/client/operator-client.js';
import { CONFIG_DOCS, envVarName, type ConfigKey } from '../../src/config/config.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SUPPORTED_MAJORS = [22, 24, 26];
/**
 * The unprivileged user the emulated image runs as: `nobody` when the tests run as root (the image's
 * own uid 10001 does not exist here), else the user running the tests.
 */
const AS_ROOT = process.getuid?.() === 0;
const RUN_AS = AS_ROOT ? { uid: 65534, gid: 65534 } : { uid: process.getuid!(), gid: process.getgid!() };

/** argv that runs `command` as RUN_AS. */
function asRunUser(command: readonly string[]): [string, string[]] {
  if (!AS_ROOT) return [command[0]!, command.slice(1)];
  return [
    'setpriv',
    ['--reuid', String(RUN_AS.uid), '--regid', String(RUN_AS.gid), '--clear-groups', '--', ...command],
  ];
}

// ---- A small Dockerfile reader: instructions, stages, global ARGs. ----

interface Instruction {
  readonly keyword: string;
  /** Arguments after the flags, as written (shell form). */
  readonly args: string;
  /** `--name=value` flags before the arguments (`COPY --from=build`, `HEALTHCHECK --interval=30s`). */
  readonly flags: Readonly<Record<string, string>>;
  /** The JSON (exec) form, when the arguments are one. */
  readonly exec?: readonly string[];
}

interface Stage {
  readonly image: string;
  readonly name?: string;
  readonly steps: readonly Instruction[];
}

function parseInstruction(line: string): Instruction {
  const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/s.exec(line) ?? [];
  let args = rest.trim();
  const flags: Record<string, string> = {};
  for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(args); m; m = /^--([a-z-]+)=(\S+)\s+/.exec(args)) {
    flags[m[1]!] = m[2]!;
    args = args.slice(m[0].length);
  }
  let exec: string[] | undefined;
  if (args.startsWith('[')) exec = JSON.parse(args) as string[];
  return { keyword: keyword.toUpperCase(), args, flags, ...(exec && { exec }) };
}

/** Stages of a Dockerfile, with `${ARG}` in FROM replaced by the global ARGs' defaults. */
function parseDockerfile(text: string): Stage[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (!pending && /^\s*(#|$)/.test(raw)) continue;
    if (/^\s*#/.test(raw)) continue; // comments inside a continued instruction
    const continued = /\\\s*$/.test(raw);
    pending += (pending ? ' ' : '') + raw.replace(/\\\s*$/, '').trim();
    if (!continued) {
      lines.push(pending);
      pending = '';
    }
  }
  const globals: Record<string, string> = {};
  const stages: Array<{ image: string; name?: string; steps: Instruction[] }> = [];
  for (const line of lines.map(parseInstruction)) {
    if (line.keyword === 'ARG' && stages.length === 0) {
      const [name, value = ''] = line.args.split('=');
      globals[name!] = value;
    } else if (line.keyword === 'FROM') {
      const [image = '', as, name] = line.args.split(/\s+/);
      const resolved = image.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_m, a?: string, b?: string) => globals[(a ?? b)!] ?? '',
      );
      stages.push({ image: resolved, ...(as?.toUpperCase() === 'AS' && name && { name }), steps: [] });
    } else {
      assert.ok(stages.length > 0, `${line.keyword} before the first FROM`);
      stages.at(-1)!.steps.push(line);
    }
  }
  return stages;
}

function stepsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.steps.filter((s) => s.keyword === keyword);
}

/** `K=V K2=V2` of an ENV instruction (no quoting used in ours). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const step of stepsOf(stage, 'ENV')) {
    for (const pair of step.args.split(/\s+/)) {
      const eq = pair.indexOf('=');
      assert.ok(eq > 0, `ENV ${step.args}: only the KEY=VALUE form is read here`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** The commands of a shell-form RUN (`a && b`), one by one. */
function commandsOf(run: Instruction): string[] {
  return run.args.split(/\s*&&\s*/).filter(Boolean);
}

async function readDockerfile(): Promise<Stage[]> {
  return parseDockerfile(await fs.readFile(path.join(root, 'Dockerfile'), 'utf8'));
}

// ---- The supported Node, as scripts/node.sh picks it. ----

async function supportedNode(): Promise<string> {
  const candidates = [process.env.FLEETMEDIC_NODE, process.execPath].filter((p): p is string => !!p);
  for (const node of candidates) {
    const { stdout } = await execa(node, ['-p', 'process.versions.node']);
    if (Number(stdout.split('.')[0]) >= 22) return node;
  }
  const { stdout } = await execa('bash', [path.join(root, 'scripts/node.sh'), '--print-path'], {
    timeout: 300_000,
  });
  return stdout.trim();
}

describe('Dockerfile', () => {
  let stages: Stage[];
  let final: Stage;
  before(async () => {
    stages = await readDockerfile();
    final = stages.at(-1)!;
  });

  it('is multi-stage on an official Debian Node image of a supported major, never Alpine', () => {
    assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
    for (const stage of stages) {
      const m = /^node:(\d+)-(bookworm|trixie)(-slim)?$/.exec(stage.image);
      assert.ok(m, `FROM ${stage.image}: an official Debian-based node image, pinned major`);
      assert.ok(SUPPORTED_MAJORS.includes(Number(m[1])), `Node ${m[1]} is supported`);
    }
    // Nor any instruction that pulls an Alpine (musl) image or package manager in.
    for (const step of stages.flatMap((s) => s.steps)) assert.doesNotMatch(step.args, /alpine|\bapk\b/i);
  });

  it('runs as a non-root user in the final stage', () => {
    const user = stepsOf(final, 'USER').at(-1)?.args;
    assert.ok(user, 'a USER instruction in the final stage');
    const [name = '', group] = user.split(':');
    for (const id of [name, group].filter((x): x is string => x !== undefined)) {
      assert.ok(id !== 'root' && id !== '0', `USER ${user} is not root`);
    }
    // Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert.match(name, /^\d+$/);
  });

  it('installs production dependencies only in the final stage', () => {
    const installs = stepsOf(final, 'RUN')
      .flatMap(commandsOf)
      .filter((c) => /^npm (ci|install|i)\b/.test(c));
    assert.ok(installs.length > 0, 'the final stage installs its dependencies');
    for (const c of installs) assert.match(c, /^npm ci .*--omit=dev/, c);
    // Nothing but the build's output comes from the build stage: no node_modules with dev dependencies.
    for (const copy of stepsOf(final, 'COPY').filter((c) => c.flags.from)) {
      assert.doesNotMatch(copy.args, /node_modules/, `COPY --from=${copy.flags.from} ${copy.args}`);
    }
  });

  it('prebuilds the workflow bundle in the build stage, and the image names it', async () => {
    const build = stages.find((s) => s.name === final.steps.find((c) => c.flags.from)?.flags.from);
    assert.ok(build, 'the final stage copies from a named build stage');
    const runs = stepsOf(build, 'RUN').flatMap(commandsOf);
    assert.ok(runs.includes('npm run build'), 'the TypeScript is compiled');
    assert.ok(runs.includes('npm run build:bundle'), 'the workflow bundle is prebuilt');
    const pkg = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.match(pkg.scripts['build:bundle'] ?? '', /scripts\/build-bundle\.ts/);
    const bundle = envOf(final).FLEETMEDIC_WORKFLOW_BUNDLE;
    assert.equal(bundle, '/app/dist/workflow-bundle.js');
    const copied = stepsOf(final, 'COPY').find((c) => c.flags.from === build.name);
    assert.match(copied?.args ?? '', /^\/app\/dist \.\/dist$/);
    assert.deepEqual(stepsOf(final, 'WORKDIR').at(-1)?.args, '/app');
  });

  it('sets only variables the configuration reads', () => {
    const read = new Set((Object.keys(CONFIG_DOCS) as ConfigKey[]).map(envVarName));
    for (const name of Object.keys(envOf(final))) {
      if (name === 'NODE_ENV') continue;
      assert.ok(read.has(name), `ENV ${name} is not read by src/config/config.ts`);
    }
  });

  it('has a HEALTHCHECK running a file the image contains, and starts the CLI', async () => {
    const check = stepsOf(final, 'HEALTHCHECK').at(-1);
    assert.ok(check, 'a HEALTHCHECK');
    const exec = /^CMD\s+(\[.*\])$/.exec(check.args);
    assert.ok(exec, 'HEALTHCHECK CMD in exec form');
    const [node, script] = JSON.parse(exec[1]!) as string[];
    assert.equal(node, 'node');
    assert.ok(
      stepsOf(final, 'COPY').some((c) =>
        script!.startsWith(`${c.args.split(/\s+/).at(-1)!.replace(/^\.\//, '')}/`),
      ),
      `${script} is copied into the image`,
    );
    await fs.access(path.join(root, script!));
    assert.deepEqual(stepsOf(final, 'ENTRYPOINT').at(-1)?.exec, ['node', 'bin/fleetmedic.js']);
    assert.deepEqual(stepsOf(final, 'CMD').at(-1)?.exec, ['worker']);
  });

  it('copies only files that exist and that .dockerignore lets into the context', async () => {
    const ignored = (await fs.readFile(path.join(root, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const copy of stages.flatMap((s) => stepsOf(s, 'COPY')).filter((c) => !c.flags.from)) {
      for (const source of copy.args.split(/\s+/).slice(0, -1)) {
        await fs.access(path.join(root, source));
        assert.ok(
          !ignored.some((i) => source === i || source.startsWith(`${i}/`)),
          `${source} is excluded by .dockerignore`,
        );
      }
    }
    for (const kept of ['node_modules', 'dist', '.git']) assert.ok(ignored.includes(kept), kept);
  });
});

// ---- The build and start steps, without Docker. ----

/** A kubeconfig with its certificate files inlined, readable by the unprivileged user. */
async function portableKubeconfig(file: string): Promise<string> {
  const doc = parseYaml(await fs.readFile(file, 'utf8')) as {
    clusters?: Array<{ cluster: Record<string, string> }>;
    users?: Array<{ user: Record<string, string> }>;
  };
  const inline = async (entry: Record<string, string>, key: string) => {
    const ref = entry[key];
    if (!ref) return;
    entry[`${key}-data`] = (await fs.readFile(path.resolve(path.dirname(file), ref))).toString('base64');
    delete entry[key];
  };
  for (const c of doc.clusters ?? []) await inline(c.cluster, 'certificate-authority');
  for (const u of doc.users ?? []) {
    await inline(u.user, 'client-certificate');
    await inline(u.user, 'client-key');
  }
  return stringifyYaml(doc);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function chownTree(dir: string, { uid, gid }: typeof RUN_AS): Promise<void> {
  if (!AS_ROOT) return;
  await fs.chown(dir, uid, gid);
  for (const entry of await fs.readdir(dir, { recursive: true })) {
    await fs.lchown(path.join(dir, entry), uid, gid);
  }
}

/**
 * Carries out the Dockerfile's stages in `work`: each stage's filesystem is `work/<index>`, so
 * `/app` of stage 1 is `work/1/app`. RUN steps run with the supported Node first on PATH.
 */
class ImageEmulator {
  readonly roots: string[] = [];
  private readonly log: string[] = [];

  constructor(
    private readonly work: string,
    private readonly node: string,
  ) {}

  /** A container path of stage `index` on this machine. */
  at(index: number, containerPath: string): string {
    return path.join(this.roots[index]!, containerPath);
  }

  async build(stages: readonly Stage[]): Promise<{ cwd: string; env: Record<string, string> }> {
    let cwd = '/';
    let env: Record<string, string> = {};
    for (const [index, stage] of stages.entries()) {
      this.roots[index] = path.join(this.work, String(index));
      await fs.mkdir(this.roots[index], { recursive: true });
      cwd = '/';
      env = {};
      const isFinal = index === stages.length - 1;
      for (const step of stage.steps) {
        switch (step.keyword) {
          case 'WORKDIR':
            cwd = path.posix.resolve(cwd, step.args);
            await fs.mkdir(this.at(index, cwd), { recursive: true });
            break;
          case 'ENV':
            Object.assign(env, envOf({ ...stage, steps: [step] }));
            break;
          case 'COPY':
            await this.copy(stages, index, cwd, step);
            break;
          case 'RUN':
            for (const command of commandsOf(step)) await this.run(index, cwd, env, command, isFinal);
            break;
          default:
            // USER, VOLUME, HEALTHCHECK, ENTRYPOINT, CMD: read when the image starts.
            break;
        }
      }
    }
    return { cwd: this.at(stages.length - 1, cwd), env };
  }

  private async copy(stages: readonly Stage[], index: number, cwd: string, step: Instruction): Promise<void> {
    const parts = step.args.split(/\s+/);
    const dest = path.posix.resolve(cwd, parts.at(-1)!);
    const sources = parts.slice(0, -1);
    const from = step.flags.from;
    const fromIndex = from === undefined ? -1 : stages.findIndex((s) => s.name === from);
    assert.ok(from === undefined || fromIndex >= 0, `COPY --from=${from}: no such stage`);
    for (const source of sources) {
      const src = fromIndex >= 0 ? this.at(fromIndex, source) : path.join(root, source);
      const into = parts.at(-1)!.endsWith('/') || sources.length > 1;
      const target = this.at(index, into ? path.posix.join(dest, path.posix.basename(source)) : dest);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.cp(src, target, { recursive: true });
    }
  }

  private async run(
    index: number,
    cwd: string,
    env: Record<string, string>,
    command: string,
    isFinal: boolean,
  ): Promise<void> {
    const dir = this.at(index, cwd);
    if (/^npm cache clean\b/.test(command)) return; // would empty this machine's shared npm cache
    if (/^(groupadd|useradd) /.test(command)) return; // the emulation runs as an existing unprivileged user
    if (/^install -d /.test(command)) {
      // `install -d -o USER -g GROUP -m MODE DIR`: the directory, owned by the unprivileged user.
      const target = command.split(/\s+/).at(-1)!;
      const mode = /-m (\d+)/.exec(command)?.[1];
      await fs.mkdir(this.at(index, target), { recursive: true });
      if (AS_ROOT) await fs.chown(this.at(index, target), RUN_AS.uid, RUN_AS.gid);
      if (mode) await fs.chmod(this.at(index, target), parseInt(mode, 8));
      return;
    }
    if (/^npm ci\b/.test(command) && !isFinal) {
      // The build stage's full install is the repository's own (same lockfile): linked, not repeated.
      // The final stage's production install below runs for real.
      await fs.symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
      this.log.push(`$ ${command}   (linked the repository's node_modules)`);
      return;
    }
    assert.match(command, /^npm (ci|run) /, `RUN ${command}: a step this emulation does not know`);
    const args = command.split(/\s+/).slice(1);
    // Offline-friendly: the npm cache here is warm; the registry is asked only for what it lacks.
    if (args[0] === 'ci') args.push('--prefer-offline');
    const started = Date.now();
    const run = await execa('npm', args, {
      cwd: dir,
      env: { ...env, PATH: `${path.dirname(this.node)}:${process.env.PATH}` },
      reject: false,
      all: true,
      timeout: 360_000,
    });
    this.log.push(`$ ${command}   (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    assert.equal(run.exitCode, 0, `RUN ${command} in ${dir}:\n${run.all}`);
  }

  summary(): string {
    return this.log.join('\n');
  }
}

describe('Dockerfile: the build and start steps, without Docker', () => {
  let stack: TestStack;
  let work: string;
  let node: string;
  before(async () => {
    stack = await useTestStack();
    node = await supportedNode();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-image-'));
    await fs.chmod(work, 0o755);
  });
  after(async () => {
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it(
    'installs production dependencies, prebuilds the bundle, and serves workflows from it as a non-root user',
    { timeout: 15 * 60_000 },
    async () => {
      const stages = await readDockerfile();
      const final = stages.at(-1)!;
      const image = new ImageEmulator(work, node);
      const { cwd, env: imageEnv } = await image.build(stages);
      const last = stages.length - 1;

      // What the image ships: compiled code, the bundle, production dependencies only.
      const bundle = image.at(last, imageEnv.FLEETMEDIC_WORKFLOW_BUNDLE!);
      assert.ok((await fs.stat(bundle)).size > 100_000, `${bundle} is a workflow bundle`);
      await fs.access(path.join(cwd, 'dist/cli/main.js'));
      await assert.rejects(fs.access(path.join(cwd, 'node_modules/typescript')), 'no dev dependency');
      await assert.rejects(fs.access(path.join(cwd, 'src')), 'no TypeScript sources');

      // The supported Node, reachable by the unprivileged user (the cache under /root is not).
      const binDir = path.join(work, 'bin');
      await fs.mkdir(binDir, { mode: 0o755 });
      const nodeLink = path.join(binDir, 'node');
      await fs.link(node, nodeLink).catch(() => fs.copyFile(node, nodeLink));
      await fs.chmod(nodeLink, 0o755);

      // The deployment's part: Temporal, the cluster's kubeconfig, the cluster ID; a queue of its own.
      const secrets = path.join(work, 'secrets');
      await fs.mkdir(secrets, { mode: 0o700 });
      const kubeconfig = path.join(secrets, 'kubeconfig.yaml');
      await fs.writeFile(kubeconfig, await portableKubeconfig(stack.state.kube.kubeconfig), { mode: 0o600 });
      await chownTree(secrets, RUN_AS);
      const clusterId = `fmimage-${process.pid}`;
      const taskQueue = `fleetmedic-image-${process.pid}`;
      const metricsPort = await freePort();
      const mapped = Object.fromEntries(
        Object.entries(imageEnv).map(([k, v]) => [k, v.startsWith('/') ? image.at(last, v) : v]),
      );
      const env = {
        ...mapped,
        PATH: `${binDir}:/usr/bin:/bin`,
        HOME: mapped.FLEETMEDIC_STATE_DIR!,
        FLEETMEDIC_TEMPORAL_ADDRESS: stack.state.temporal.address,
        FLEETMEDIC_KUBECONFIG: kubeconfig,
        FLEETMEDIC_CLUSTER_ID: clusterId,
        FLEETMEDIC_TASK_QUEUE: taskQueue,
        FLEETMEDIC_LOG_LEVEL: 'warn',
        FLEETMEDIC_METRICS_PORT: String(metricsPort),
      };
      const entrypoint = [
        ...stepsOf(final, 'ENTRYPOINT').at(-1)!.exec!,
        ...stepsOf(final, 'CMD').at(-1)!.exec!,
      ];

      const connection = await Connection.connect({ address: stack.state.temporal.address });
      const client = new Client({ connection, namespace: stack.config.temporalNamespace });
      assert.notEqual(RUN_AS.uid, 0);
      const worker = execa(...asRunUser(entrypoint), {
        cwd,
        env,
        extendEnv: false,
        all: true,
        reject: false,
      });
      try {
        let output = '';
        worker.all.on('data', (chunk: Buffer) => (output += chunk.toString()));
        const exited = worker.then((r) => {
          throw new Error(`the worker exited (${r.exitCode ?? r.signal}):\n${output}`);
        });
        exited.catch(() => {}); // raced below; its exit at shutdown is expected
        await Promise.race([
          exited,
          waitFor(
            () => output.includes(`workflow bundle prebuilt ${bundle}`),
            120_000,
            () => output,
          ),
        ]);

        // Who runs it: the unprivileged user, on the supported Node.
        const pid = worker.pid!;
        const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
        assert.match(status, new RegExp(`^Uid:\\s+${RUN_AS.uid}\\s`, 'm'));
        assert.equal((await fs.stat(`/proc/${pid}/exe`)).ino, (await fs.stat(nodeLink)).ino);

        // It polls its task queue, and an update runs in a workflow of the prebuilt bundle.
        await waitFor(
          async () => {
            const described = await client.workflowService.describeTaskQueue({
              namespace: stack.config.temporalNamespace,
              taskQueue: { name: taskQueue },
              taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
            });
            return (described.pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`));
          },
          60_000,
          () => `no poller of pid ${pid} on ${taskQueue}\n${output}`,
        );
        const operator = new OperatorClient(client, { clusterId, taskQueue, timeoutMs: 60_000 });
        const paused = await Promise.race([
          exited,
          operator.setPaused(true, { by: 'packaging-test', reason: 'image check' }),
        ]);
        assert.equal(paused.paused, true);

        // The image's HEALTHCHECK, as Docker runs it inside the container.
        const check = /^CMD\s+(\[.*\])$/.exec(stepsOf(final, 'HEALTHCHECK').at(-1)!.args)!;
        const health = await execa(...asRunUser(JSON.parse(check[1]!) as string[]), {
          cwd,
          env,
          extendEnv: false,
          reject: false,
          timeout: 10_000,
        });
        assert.equal(health.exitCode, 0, `healthcheck: ${health.stderr}`);
      } finally {
        await client.workflow
          .getHandle(fleetBudgetWorkflowId(clusterId))
          .terminate('packaging test done')
          .catch(() => {});
        worker.kill('SIGINT');
        const timer = setTimeout(() => worker.kill('SIGKILL'), 20_000);
        await worker;
        clearTimeout(timer);
        await connection.close();
        process.stderr.write(`image steps:\n${image.summary()}\n`);
      }
    },
  );
});

/** Polls `condition` every 500 ms until it holds, or fails after `ms` with `describe()`. */
async function waitFor(
  condition: () => boolean | Promise<boolean>,
  ms: number,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (
      await Promise.resolve()
        .then(condition)
        .catch(() => false)
    )
      return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s: ${describe()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
