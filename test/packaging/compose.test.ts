/**
 * docker-compose.yml: valid against the Compose specification's JSON schema, every published port on
 * loopback, the fleetmedic services configured only by variables the code reads (the configuration
 * module and the commands' own flags), the one-shot jobs ordered before the services, and the
 * namespace job registering exactly the search attributes of src/workflows/search-attributes.ts. The
 * namespace job's script also runs for real against the test stack's Temporal server.
 *
 * The schema is not vendored: it ships in the Go module github.com/compose-spec/compose-go/v2 and is
 * read from the Go module cache after `go mod download` (the Go proxy is a package registry).
 */
import { Connection } from '@temporalio/client';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Command, type Option } from 'commander';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { registerRemediationCommands } from '../../src/cli/commands/remediation.js';
import { registerWebhookCommands } from '../../src/cli/commands/webhook.js';
import { CONFIG_DOCS, envVarName, loadConfig, type ConfigKey } from '../../src/config/config.js';
import { loadRulesFile } from '../../src/webhook/rules.js';
import { SEARCH_ATTRIBUTES } from '../../src/contracts/search-attributes.js';
import { useTestStack } from '../helpers/stack.js';
import { temporalBinary } from '../helpers/temporal.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = path.join(root, 'docker-compose.yml');

/** The compose-go release whose schema/compose-spec.json the file is checked against. */
const COMPOSE_GO = 'github.com/compose-spec/compose-go/v2@v2.16.2';
/** The services built from the project's Dockerfile. */
const FLEETMEDIC_SERVICES = ['worker', 'webhook'] as const;
/** Values for the variables the compose file requires from its `.env`, as an operator would set them. */
const DOTENV = { FLEETMEDIC_CLUSTER_ID: 'prod-a', POSTGRES_PASSWORD: 'not-a-real-password' };

interface PortLong {
  readonly host_ip?: string;
  readonly published?: string | number;
  readonly target: number;
}
interface Service {
  readonly image?: string;
  readonly build?: string | { readonly context?: string; readonly dockerfile?: string };
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly environment?: Record<string, string>;
  readonly ports?: ReadonlyArray<string | PortLong>;
  readonly depends_on?: Record<string, { readonly condition: string }>;
  readonly healthcheck?: { readonly test: readonly string[] };
  readonly secrets?: ReadonlyArray<string | { readonly source: string; readonly target?: string }>;
  readonly configs?: ReadonlyArray<string | { readonly source: string; readonly target?: string }>;
  readonly network_mode?: string;
}
interface ComposeFile {
  readonly services: Record<string, Service>;
  readonly secrets?: Record<string, { readonly file?: string }>;
  readonly configs?: Record<string, { readonly file?: string }>;
}

async function readCompose(): Promise<ComposeFile> {
  // Merge keys (`<<: *anchor`) resolved, as Compose resolves them before validating.
  return parseYaml(await fs.readFile(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
}

/** Compose's interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`) over `env`. */
function interpolate(value: string, env: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced?: string, op?: string, arg?: string, bare?: string) => {
      if (match === '$$') return '$';
      const name = (braced ?? bare)!;
      const v = env[name];
      const missing = op?.startsWith(':') ? !v : v === undefined;
      if (!missing) return v!;
      if (op?.endsWith('?')) throw new Error(`required variable ${name} is missing: ${arg}`);
      return op ? arg! : '';
    },
  );
}

function environmentOf(service: Service, env: Record<string, string> = DOTENV): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), env)]),
  );
}

/** `127.0.0.1:7233:7233` or the long form, as host IP, published port and container port. */
function parsePort(port: string | PortLong): { hostIp?: string; published?: string; target: number } {
  if (typeof port !== 'string') {
    return { hostIp: port.host_ip, published: port.published?.toString(), target: port.target };
  }
  const parts = port.replace(/\/(tcp|udp)$/, '').split(':');
  const target = Number(parts.at(-1));
  if (parts.length === 3) return { hostIp: parts[0], published: parts[1], target };
  if (parts.length === 2) return { published: parts[0], target };
  return { target };
}

/** temporal.api.enums.v1.IndexedValueType, as the operator service reports a search attribute's type. */
const INDEXED_VALUE_TYPE = { TEXT: 1, KEYWORD: 2, INT: 3, DOUBLE: 4, BOOL: 5, DATETIME: 6, KEYWORD_LIST: 7 };

/** The SDK's type name (`KEYWORD_LIST`) as the Temporal CLI spells it (`KeywordList`). */
function cliType(type: string): string {
  return type
    .split('_')
    .map((w) => w[0] + w.slice(1).toLowerCase())
    .join('');
}

/** The subcommand a service runs (`['webhook', 'serve']`) in fleetmedic's command tree. */
function commandOf(words: readonly string[]): Command {
  const program = new Command('fleetmedic');
  registerRemediationCommands(program);
  registerWebhookCommands(program);
  let cmd: Command = program;
  for (const word of words) {
    const next = cmd.commands.find((c) => c.name() === word);
    assert.ok(next, `\`fleetmedic ${words.join(' ')}\`: no command ${word} (register it in this test)`);
    cmd = next;
  }
  return cmd;
}

/** Every variable `fleetmedic <words>` reads: the configuration's and the command's own flags'. */
function variablesRead(words: readonly string[]): Map<string, Option | undefined> {
  const read = new Map<string, Option | undefined>(
    (Object.keys(CONFIG_DOCS) as ConfigKey[]).map((key) => [envVarName(key), undefined]),
  );
  for (const option of commandOf(words).options) if (option.envVar) read.set(option.envVar, option);
  return read;
}

/** Where `go mod download` put compose-go, and its schema. */
async function composeSpecSchema(): Promise<{ schema: Record<string, unknown>; dir: string }> {
  const env = {
    ...process.env,
    PATH: `${process.env.PATH}:/usr/local/go/bin`,
    GOFLAGS: '-mod=mod',
  };
  const cwd = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-compose-go-'));
  try {
    const run = await execa(process.env.FLEETMEDIC_GO || 'go', ['mod', 'download', '-json', COMPOSE_GO], {
      cwd,
      env,
      reject: false,
      timeout: 180_000,
    });
    const info = JSON.parse(run.stdout || '{}') as { Dir?: string; Error?: string };
    assert.ok(info.Dir, `go mod download ${COMPOSE_GO}: ${info.Error ?? run.stderr}`);
    const file = path.join(info.Dir, 'schema', 'compose-spec.json');
    return { schema: JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>, dir: info.Dir };
  } finally {
    await fs.rm(cwd, { recursive: true, force: true });
  }
}

describe('docker-compose.yml', () => {
  let compose: ComposeFile;
  before(async () => {
    compose = await readCompose();
  });

  it(`is valid against the Compose specification (schema of ${COMPOSE_GO})`, async () => {
    const { schema } = await composeSpecSchema();
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema', 'the draft Ajv2020 checks');
    // strict: false because the schema uses annotations Ajv's strict mode rejects; validation is unchanged.
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    // compose-go registers this format too (schema/schema.go): Go durations such as 1m30s.
    ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    assert.ok(ok, ajv.errorsText(validate.errors, { separator: '\n' }));
  });

  it('publishes every port on 127.0.0.1 only, and no service shares the host network', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      assert.notEqual(service.network_mode, 'host', `${name}: network_mode host`);
      for (const port of service.ports ?? []) {
        assert.equal(parsePort(port).hostIp, '127.0.0.1', `${name}: port ${JSON.stringify(port)}`);
      }
    }
  });

  for (const name of FLEETMEDIC_SERVICES) {
    it(`${name}: is built from the Dockerfile and reads only variables the code reads, all valid`, () => {
      const service = compose.services[name]!;
      const build = typeof service.build === 'string' ? { context: service.build } : service.build;
      assert.equal(build?.context, '.', `${name} builds the project's image`);
      assert.equal(build?.dockerfile ?? 'Dockerfile', 'Dockerfile');
      assert.ok(service.command, `${name} names its command`);
      const read = variablesRead(service.command);
      const env = environmentOf(service);
      for (const variable of Object.keys(env)) {
        assert.ok(read.has(variable), `${name}: ${variable} is read by neither config.ts nor the command`);
      }
      // Valid for the configuration module and for the command's own flags (commander's parsers).
      const config = loadConfig(env);
      assert.equal(config.clusterId, DOTENV.FLEETMEDIC_CLUSTER_ID);
      for (const [variable, value] of Object.entries(env)) {
        const option = read.get(variable);
        if (option?.parseArg) option.parseArg(value, undefined);
      }
      // What a service cannot start without when it is not beside an embedded stack.
      for (const required of [
        'FLEETMEDIC_TEMPORAL_ADDRESS',
        'FLEETMEDIC_CLUSTER_ID',
        'FLEETMEDIC_KUBECONFIG',
      ]) {
        assert.ok(env[required], `${name}: ${required}`);
      }
    });
  }

  it('mounts every file the fleetmedic services are given, and publishes the ports they listen on', async () => {
    const { services } = compose;
    for (const name of FLEETMEDIC_SERVICES) {
      const service = services[name]!;
      const env = environmentOf(service);
      const mounted = new Map<string, string>();
      for (const s of service.secrets ?? []) {
        const ref = typeof s === 'string' ? { source: s } : s;
        const target = ref.target ?? ref.source;
        mounted.set(
          target.startsWith('/') ? target : `/run/secrets/${target}`,
          compose.secrets![ref.source]!.file!,
        );
      }
      for (const c of service.configs ?? []) {
        const ref = typeof c === 'string' ? { source: c } : c;
        mounted.set(ref.target ?? `/${ref.source}`, compose.configs![ref.source]!.file!);
      }
      for (const [variable, value] of Object.entries(env)) {
        if (!/_(FILE|KUBECONFIG|RULES|CONFIG)$/.test(variable)) continue;
        assert.ok(mounted.has(value), `${name}: ${variable}=${value} is not mounted`);
      }
      // The service listens where its port is published (inside the container, on every interface).
      const port = env.FLEETMEDIC_WEBHOOK_PORT ?? env.FLEETMEDIC_METRICS_PORT;
      assert.ok(
        port,
        `${name} serves a port (webhook, or the worker's metrics, which the healthcheck reads)`,
      );
      // The webhook may serve /metrics on a listener of its own, published too.
      const metricsPort = env.FLEETMEDIC_WEBHOOK_METRICS_PORT;
      assert.deepEqual(
        (service.ports ?? []).map((p) => parsePort(p).target),
        [Number(port), ...(metricsPort ? [Number(metricsPort)] : [])],
      );
      if (metricsPort) {
        assert.equal(
          env.FLEETMEDIC_WEBHOOK_ALLOW_UNAUTHENTICATED_METRICS,
          'true',
          'or the webhook refuses to start',
        );
      }
      assert.equal(env.FLEETMEDIC_WEBHOOK_HOST ?? env.FLEETMEDIC_METRICS_HOST, '0.0.0.0');
      if (env.FLEETMEDIC_WEBHOOK_HOST) {
        assert.ok(env.FLEETMEDIC_WEBHOOK_TOKEN_FILE, 'a webhook on a non-loopback address needs credentials');
      }
      // Temporal: the compose service, on its container port, in the namespace the job creates.
      const [host, temporalPort] = env.FLEETMEDIC_TEMPORAL_ADDRESS!.split(':');
      assert.ok(services[host!], `${name}: FLEETMEDIC_TEMPORAL_ADDRESS names service ${host}`);
      assert.ok(
        services[host!]!.ports?.some((p) => parsePort(p).target === Number(temporalPort)),
        `${name}: Temporal listens on ${temporalPort}`,
      );
      assert.equal(
        env.FLEETMEDIC_TEMPORAL_NAMESPACE,
        environmentOf(services['temporal-namespace']!).TEMPORAL_NAMESPACE,
      );
    }
    assert.equal(
      environmentOf(services['temporal-ui']!).TEMPORAL_DEFAULT_NAMESPACE,
      environmentOf(services['temporal-namespace']!).TEMPORAL_NAMESPACE,
    );
    const rules = compose.configs!['webhook-rules']!.file!;
    await loadRulesFile(path.join(root, rules));
  });

  it('starts the services only after the schema and namespace jobs succeeded', () => {
    const { services } = compose;
    const completed = { condition: 'service_completed_successfully' };
    for (const name of FLEETMEDIC_SERVICES) {
      assert.deepEqual(services[name]!.depends_on, {
        'temporal-schema': completed,
        'temporal-namespace': completed,
      });
    }
    assert.deepEqual(services.temporal!.depends_on, { 'temporal-schema': completed });
    assert.deepEqual(services['temporal-schema']!.depends_on, {
      postgresql: { condition: 'service_healthy' },
    });
    assert.deepEqual(services['temporal-namespace']!.depends_on, {
      temporal: { condition: 'service_healthy' },
    });
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.ok(services[dep], `${name} depends on a service that does not exist: ${dep}`);
        if (condition === 'service_healthy') assert.ok(services[dep].healthcheck, `${dep} has a healthcheck`);
      }
    }
  });

  it('runs the official Temporal server and admin tools of one release (no auto-setup)', () => {
    const { services } = compose;
    const server = /^temporalio\/server:(1\.29\.\d+)$/.exec(services.temporal!.image ?? '');
    assert.ok(server, `temporal: ${services.temporal!.image}`);
    for (const job of ['temporal-schema', 'temporal-namespace']) {
      const tools = /^temporalio\/admin-tools:(\d+\.\d+\.\d+)/.exec(services[job]!.image ?? '');
      assert.equal(tools?.[1], server[1], `${job}: admin-tools of server ${server[1]}`);
    }
    assert.match(services['temporal-ui']!.image ?? '', /^temporalio\/ui:\d+\.\d+\.\d+$/);
    assert.match(services.postgresql!.image ?? '', /^postgres:16$/);
    assert.ok(!Object.values(services).some((s) => s.image?.includes('auto-setup')));
  });

  it('sets up both databases, each created, set up and updated to the versioned schema', () => {
    const script = interpolate(compose.services['temporal-schema']!.command!.join('\n'), DOTENV);
    for (const db of ['temporal', 'temporal_visibility']) {
      const dir = db === 'temporal' ? 'temporal' : 'visibility';
      for (const step of [
        'create',
        'setup-schema -v 0.0',
        `update-schema -d "$SCHEMA_DIR/${dir}/versioned"`,
      ]) {
        assert.ok(script.includes(`--db ${db} ${step}`), `temporal-schema: ${db} ${step}`);
      }
    }
  });

  it('registers exactly the search attributes of src/workflows/search-attributes.ts, with a retention', () => {
    const job = compose.services['temporal-namespace']!;
    const script = job.command!.join('\n');
    const registered = [...script.matchAll(/--name (\S+) --type (\S+)/g)].map((m) => `${m[1]}=${m[2]}`);
    const expected = SEARCH_ATTRIBUTES.map((k) => `${k.name}=${cliType(k.type)}`);
    assert.deepEqual(registered.sort(), expected.sort());
    assert.equal(environmentOf(job).TEMPORAL_NAMESPACE_RETENTION, '30d');
    assert.match(script, /namespace create --retention "\$\$TEMPORAL_NAMESPACE_RETENTION"/);
    assert.match(script, /namespace update --retention "\$\$TEMPORAL_NAMESPACE_RETENTION"/);
  });

  it('deploy/compose/env.example names every variable the file requires', async () => {
    const text = await fs.readFile(COMPOSE_FILE, 'utf8');
    const required = new Set([...text.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]!));
    const example = await fs.readFile(path.join(root, 'deploy/compose/env.example'), 'utf8');
    for (const name of required) assert.match(example, new RegExp(`^${name}=`, 'm'), name);
    assert.deepEqual([...required].sort(), Object.keys(DOTENV).sort());
  });
});

describe('docker-compose.yml: the namespace job against a Temporal server', () => {
  let connection: Connection;
  let dir: string;
  const namespace = `fm-compose-${process.pid}`;
  before(async () => {
    const stack = await useTestStack();
    connection = await Connection.connect({ address: stack.state.temporal.address });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-compose-ns-'));
    // The admin-tools image has the Temporal CLI on PATH as `temporal`.
    await fs.symlink(await temporalBinary(), path.join(dir, 'temporal'));
  });
  after(async () => {
    await connection?.operatorService.deleteNamespace({ namespace }).catch(() => {});
    await connection?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates the namespace with its retention and every search attribute, and can run again', async () => {
    const stack = await useTestStack();
    const job = (await readCompose()).services['temporal-namespace']!;
    const env = {
      ...environmentOf(job),
      TEMPORAL_ADDRESS: stack.state.temporal.address,
      TEMPORAL_NAMESPACE: namespace,
    };
    // As Compose runs it: `$$` becomes `$`, then the entrypoint's shell runs the command.
    const script = interpolate(job.command!.join('\n'), {});
    for (const attempt of ['first start', 'restart']) {
      const run = await execa(job.entrypoint![0]!, [...job.entrypoint!.slice(1), script], {
        env: { PATH: `${dir}:${process.env.PATH}`, HOME: dir, ...env },
        extendEnv: false,
        reject: false,
        timeout: 240_000,
      });
      assert.equal(run.exitCode, 0, `${attempt}: ${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, new RegExp(`temporal-namespace: ${namespace} ready`));
    }
    const described = await connection.workflowService.describeNamespace({ namespace });
    const retention = described.config?.workflowExecutionRetentionTtl;
    assert.equal(Number(retention?.seconds ?? 0), 30 * 24 * 3600);
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    for (const key of SEARCH_ATTRIBUTES) {
      assert.equal(
        customAttributes?.[key.name],
        INDEXED_VALUE_TYPE[key.type],
        `${key.name} registered in ${namespace} as ${key.type}`,
      );
    }
  });
});
