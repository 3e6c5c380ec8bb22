import { execa } from 'execa';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ToolchainError } from '../errors.js';
import { KWOK_DEFAULT_STAGE_FILES, kwokStagesDir } from '../stack/kwok-stages.js';
import {
  KWOK_VERSION,
  TOOLS,
  toolSpec,
  type GoBuild,
  type StackToolName,
  type ToolName,
  type ToolSpec,
} from './tools.js';

/** A tool found and checked: where it is, and whether it came from the cache or an environment variable. */
export interface ResolvedTool {
  readonly name: ToolName;
  readonly path: string;
  readonly version: string;
  readonly source: 'env' | 'cache';
}

export type ToolchainLog = (line: string) => void;

export interface ToolchainOptions {
  /** fleetmedic's cache directory; binaries go to `<cacheDir>/toolchain/<name>-v<version>/<name>`. */
  readonly cacheDir: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: ToolchainLog;
}

/** Where the cached binary of a tool lives, keyed by version. */
export function cachedToolPath(cacheDir: string, spec: ToolSpec): string {
  return path.join(cacheDir, 'toolchain', `${spec.name}-v${spec.version}`, spec.name);
}

/** Runs the tool's version command; ok when the output matches the pinned version. */
export async function checkToolVersion(
  binary: string,
  spec: ToolSpec,
): Promise<{ ok: boolean; detail: string }> {
  try {
    await fs.access(binary, fsConstants.X_OK);
  } catch {
    return { ok: false, detail: `${binary} does not exist or is not executable` };
  }
  const result = await execa(binary, spec.versionArgs, { reject: false, timeout: 20_000, all: true });
  const output = (result.all ?? '').trim();
  if (result.exitCode === 0 && spec.versionPattern.test(output)) {
    return { ok: true, detail: output.split('\n')[0] ?? '' };
  }
  const why = result.timedOut ? 'timed out' : `exit ${result.exitCode ?? result.signal}`;
  return {
    ok: false,
    detail: `${binary} ${spec.versionArgs.join(' ')} (${why}) printed ${JSON.stringify(output.slice(0, 200))}, expected ${spec.versionPattern}`,
  };
}

/**
 * Finds a tool without building anything: the binary named by its environment variable (which must
 * pass the version check), else the cached build. Never a binary found on PATH: these machines may
 * carry a `kubectl` or `etcd` that is not ours.
 *
 * @throws ToolchainError saying how to get the tool.
 */
export async function resolveTool(name: ToolName, options: ToolchainOptions): Promise<ResolvedTool> {
  const spec = toolSpec(name);
  const env = options.env ?? process.env;
  const fromEnv = env[spec.envVar];
  if (fromEnv) {
    const check = await checkToolVersion(fromEnv, spec);
    if (!check.ok) {
      throw new ToolchainError(`${spec.envVar}=${fromEnv} is not ${name} v${spec.version}: ${check.detail}`);
    }
    return { name, path: fromEnv, version: spec.version, source: 'env' };
  }
  const cached = cachedToolPath(options.cacheDir, spec);
  const check = await checkToolVersion(cached, spec);
  if (!check.ok) {
    throw new ToolchainError(
      `${name} v${spec.version} is not built yet (${check.detail}); run \`fleetmedic toolchain\` or set ${spec.envVar}`,
    );
  }
  return { name, path: cached, version: spec.version, source: 'cache' };
}

/** Resolves every tool the embedded stack runs (not helm); throws on the first one missing. */
export async function resolveToolchain(
  options: ToolchainOptions,
): Promise<Record<StackToolName, ResolvedTool>> {
  return resolveTools(
    TOOLS.filter((t) => t.stack),
    options,
  );
}

async function resolveTools(
  specs: readonly ToolSpec[],
  options: ToolchainOptions,
): Promise<Record<ToolName, ResolvedTool>> {
  const entries = await Promise.all(
    specs.map(async (spec) => [spec.name, await resolveTool(spec.name, options)] as const),
  );
  return Object.fromEntries(entries) as Record<ToolName, ResolvedTool>;
}

const MIN_GO = [1, 26] as const;

async function findGo(env: NodeJS.ProcessEnv): Promise<string> {
  const go = env.FLEETMEDIC_GO || 'go';
  const result = await execa(go, ['env', 'GOVERSION'], { reject: false, env: goEnv(env), extendEnv: false });
  const missing =
    `Go >= ${MIN_GO.join('.')} is needed to build the embedded stack's tools (Temporal CLI, kwok, Kubernetes, etcd). ` +
    `Install it (https://go.dev/dl/) and put it on PATH or name it in FLEETMEDIC_GO, or set prebuilt binaries in ` +
    TOOLS.map((t) => t.envVar).join(', ');
  if (result.exitCode !== 0) {
    const why = result.failed && result.exitCode === undefined ? result.shortMessage : result.stderr.trim();
    throw new ToolchainError(`${missing}; running "${go} env GOVERSION" failed: ${why}`);
  }
  const match = /^go(\d+)\.(\d+)/.exec(result.stdout.trim());
  const [major, minor] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (major < MIN_GO[0] || (major === MIN_GO[0] && minor < MIN_GO[1])) {
    throw new ToolchainError(`${missing}; found ${result.stdout.trim()}`);
  }
  return go;
}

interface BuildGroup {
  readonly key: string;
  readonly build: GoBuild;
  readonly specs: ToolSpec[];
}

/** Groups tools that one `go build` can produce together (the Kubernetes binaries share most packages). */
function groupBuilds(specs: readonly ToolSpec[]): BuildGroup[] {
  const groups = new Map<string, BuildGroup>();
  for (const spec of specs) {
    const key = spec.build.kind === 'wrapper' ? `wrapper:${spec.build.module}` : `install:${spec.name}`;
    const group = groups.get(key) ?? { key, build: spec.build, specs: [] };
    group.specs.push(spec);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/**
 * Builds every tool (the embedded stack's and helm) that is not cached (or whose cached binary fails
 * its version check) from its Go module, into the cache. Idempotent: with a warm cache it only runs
 * the version checks.
 * A tool named by its environment variable is checked and never built.
 */
export async function buildToolchain(
  options: ToolchainOptions & { force?: boolean },
): Promise<Record<ToolName, ResolvedTool>> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const missing: ToolSpec[] = [];
  for (const spec of TOOLS) {
    if (env[spec.envVar]) {
      const resolved = await resolveTool(spec.name, options);
      log(`${spec.name} v${spec.version}: using ${resolved.path} (from ${spec.envVar})`);
      continue;
    }
    const cached = cachedToolPath(options.cacheDir, spec);
    const check = options.force
      ? { ok: false, detail: 'rebuild forced' }
      : await checkToolVersion(cached, spec);
    if (check.ok) {
      log(`${spec.name} v${spec.version}: cached (${cached})`);
    } else {
      if (!check.detail.includes('does not exist'))
        log(`${spec.name}: cached binary rejected: ${check.detail}`);
      missing.push(spec);
    }
  }
  if (missing.length > 0) {
    const go = await findGo(env);
    for (const group of groupBuilds(missing)) {
      await buildGroup(go, group, options.cacheDir, env, log);
    }
  }
  await extractKwokStages(options.cacheDir, env, log);
  return resolveTools(TOOLS, options);
}

/**
 * Copies kwok's default stage files from the kwok module (already in Go's module cache after kwok's
 * build; otherwise fetched from the module proxy) into the toolchain cache: the embedded cluster's
 * configuration changes two of them for the process runner (src/stack/kwok-stages.ts).
 */
async function extractKwokStages(cacheDir: string, env: NodeJS.ProcessEnv, log: ToolchainLog): Promise<void> {
  const dir = kwokStagesDir(cacheDir);
  const want = KWOK_DEFAULT_STAGE_FILES.map((f) => path.join(dir, path.basename(f)));
  if ((await Promise.all(want.map(exists))).every(Boolean)) {
    log(`kwok v${KWOK_VERSION} stages: cached (${dir})`);
    return;
  }
  const go = await findGo(env);
  const module = `sigs.k8s.io/kwok@v${KWOK_VERSION}`;
  const download = await execa(go, ['mod', 'download', '-json', module], {
    env: goEnv(env),
    extendEnv: false,
    cwd: cacheDir,
    reject: false,
  });
  if (download.exitCode !== 0) {
    throw new ToolchainError(`go mod download ${module} failed: ${download.stdout}${download.stderr}`);
  }
  const { Dir: moduleDir } = JSON.parse(download.stdout) as { Dir: string };
  await fs.mkdir(dir, { recursive: true });
  for (const file of KWOK_DEFAULT_STAGE_FILES) {
    const target = path.join(dir, path.basename(file));
    await fs.copyFile(path.join(moduleDir, file), `${target}.tmp`);
    await fs.chmod(`${target}.tmp`, 0o644);
    await fs.rename(`${target}.tmp`, target);
  }
  log(`kwok v${KWOK_VERSION} stages: copied from ${module} (${dir})`);
}

function goEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // GOTOOLCHAIN=local: never download another Go toolchain; -buildvcs=false: the wrapper modules have no VCS.
  return { ...env, GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0' };
}

async function buildGroup(
  go: string,
  group: BuildGroup,
  cacheDir: string,
  env: NodeJS.ProcessEnv,
  log: ToolchainLog,
): Promise<void> {
  const names = group.specs.map((s) => s.name).join(', ');
  const outDir = path.join(cacheDir, 'toolchain', `.build-${process.pid}-${group.key.replace(/\W/g, '-')}`);
  await fs.rm(outDir, { recursive: true, force: true });
  await fs.mkdir(outDir, { recursive: true });
  const started = Date.now();
  log(`building ${names} from Go modules (a cold build can take tens of minutes on 2 cores)`);
  try {
    if (group.build.kind === 'install') {
      const ldflags = group.build.ldflags ? ['-ldflags', group.build.ldflags.join(' ')] : [];
      const installEnv = { ...goEnv(env), GOBIN: outDir };
      await runGo(
        go,
        ['install', '-v', '-trimpath', ...ldflags, group.build.pkg],
        { env: installEnv },
        names,
        log,
      );
    } else {
      const moduleDir = await prepareWrapperModule(go, group.build.module, cacheDir, env, log);
      const ldflags = group.build.ldflags ? ['-ldflags', group.build.ldflags.join(' ')] : [];
      const pkgs = group.specs.map((s) => (s.build as { pkg: string }).pkg);
      // One package: name the output (etcd's package path ends in /v3). Several: go names each after its directory.
      const output = pkgs.length === 1 ? path.join(outDir, group.specs[0]!.name) : outDir + path.sep;
      await runGo(
        go,
        ['build', '-v', '-trimpath', ...ldflags, '-o', output, ...pkgs],
        { env: goEnv(env), cwd: moduleDir },
        names,
        log,
      );
    }
    for (const spec of group.specs) {
      const built = path.join(outDir, (spec.build.kind === 'install' && spec.build.binary) || spec.name);
      const check = await checkToolVersion(built, spec);
      if (!check.ok)
        throw new ToolchainError(`built ${spec.name} but its version check failed: ${check.detail}`);
      const target = cachedToolPath(cacheDir, spec);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.rename(built, target);
      log(`${spec.name} v${spec.version}: built (${target})`);
    }
    log(`built ${names} in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    await fs.rm(outDir, { recursive: true, force: true });
  }
}

async function runGo(
  go: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string },
  what: string,
  log: ToolchainLog,
): Promise<void> {
  const started = Date.now();
  let packages = 0;
  const ticker = setInterval(() => {
    const elapsed = Math.round((Date.now() - started) / 1000);
    log(`  ... ${what}: ${packages} packages compiled, ${Math.floor(elapsed / 60)}m${elapsed % 60}s elapsed`);
  }, 30_000);
  try {
    const child = execa(go, args, {
      ...options,
      extendEnv: false,
      reject: false,
      all: true,
      buffer: { all: true },
    });
    child.all?.on('data', (chunk: Buffer) => {
      packages += chunk
        .toString()
        .split('\n')
        .filter((l) => l && !l.startsWith('go: ')).length;
    });
    const result = await child;
    if (result.exitCode !== 0) {
      const tail = (result.all ?? '').split('\n').slice(-30).join('\n');
      throw new ToolchainError(
        `go ${args.slice(0, 2).join(' ')} for ${what} failed (exit ${result.exitCode}):\n${tail}`,
      );
    }
  } finally {
    clearInterval(ticker);
  }
}

/**
 * Writes a small module that requires the upstream one. `k8s.io/kubernetes` cannot be `go install`ed:
 * its go.mod replaces the staging modules (`k8s.io/api v0.0.0`, ...) with local paths, so the wrapper
 * replaces each with the published `v0.<minor>.<patch>` and copies upstream's `go` and `godebug` lines.
 */
async function prepareWrapperModule(
  go: string,
  which: 'kubernetes' | 'etcd',
  cacheDir: string,
  env: NodeJS.ProcessEnv,
  log: ToolchainLog,
): Promise<string> {
  const spec = which === 'kubernetes' ? toolSpec('kube-apiserver') : toolSpec('etcd');
  const upstream = which === 'kubernetes' ? 'k8s.io/kubernetes' : 'go.etcd.io/etcd/server/v3';
  const dir = path.join(cacheDir, 'toolchain', 'src', `${which}-v${spec.version}`);
  const done = path.join(dir, '.ready');
  if (await exists(done)) return dir;
  await fs.mkdir(dir, { recursive: true });
  log(`  preparing wrapper module for ${upstream}@v${spec.version}`);
  const download = await execa(go, ['mod', 'download', '-json', `${upstream}@v${spec.version}`], {
    env: goEnv(env),
    extendEnv: false,
    cwd: dir,
    reject: false,
  });
  if (download.exitCode !== 0) {
    throw new ToolchainError(
      `go mod download ${upstream}@v${spec.version} failed: ${download.stdout}${download.stderr}`,
    );
  }
  const info = JSON.parse(download.stdout) as { GoMod: string };
  const upstreamMod = await fs.readFile(info.GoMod, 'utf8');
  const lines = [`module fleetmedic.local/${which}-build`, ''];
  for (const line of upstreamMod.split('\n')) {
    if (/^(go|godebug) /.test(line)) lines.push(line);
  }
  lines.push('', `require ${upstream} v${spec.version}`, '');
  if (which === 'kubernetes') {
    const minorPatch = spec.version.split('.').slice(1).join('.');
    const staging = [...upstreamMod.matchAll(/^\s+(k8s\.io\/[a-z0-9-]+) v0\.0\.0$/gm)].map((m) => m[1]);
    lines.push('replace (', ...staging.map((m) => `\t${m} v0.0.0 => ${m} v0.${minorPatch}`), ')', '');
  }
  await fs.writeFile(path.join(dir, 'go.mod'), lines.join('\n'));
  const pkgs = TOOLS.filter((t) => t.build.kind === 'wrapper' && t.build.module === which).map(
    (t) => (t.build as { pkg: string }).pkg,
  );
  await fs.writeFile(
    path.join(dir, 'tools.go'),
    `//go:build tools\n\npackage tools\n\nimport (\n${pkgs.map((p) => `\t_ "${p}"`).join('\n')}\n)\n`,
  );
  const tidy = await execa(go, ['mod', 'tidy'], {
    env: goEnv(env),
    extendEnv: false,
    cwd: dir,
    reject: false,
    all: true,
  });
  if (tidy.exitCode !== 0)
    throw new ToolchainError(`go mod tidy for the ${which} wrapper failed:\n${tidy.all}`);
  await fs.writeFile(done, new Date().toISOString());
  return dir;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
