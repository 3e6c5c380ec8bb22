import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

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

/**
 * The schema of fleetmedic's configuration. Keys are camelCase; the environment variable of a key is
 * `FLEETMEDIC_` + its SCREAMING_SNAKE_CASE form (`stateDir` -> `FLEETMEDIC_STATE_DIR`), and CLI flags use
 * the kebab-case form (`--state-dir`).
 */
const schema = z.object({
  /** Where the embedded stack keeps its state: pid files, logs, the Temporal database, kubeconfig. */
  stateDir: absolutePath,
  /** Where built toolchain binaries are cached, keyed by version. */
  cacheDir: absolutePath,
  /** ID of the cluster this process manages; defaults to the embedded cluster's name. */
  clusterId: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'a DNS label of at most 40 characters')
    .optional(),
  /** An explicit kubeconfig; without it, the one the embedded stack wrote. Never ~/.kube/config. */
  kubeconfig: absolutePath.optional(),
  /** host:port of the Temporal frontend; without it, the embedded stack's. */
  temporalAddress: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'host:port')
    .optional(),
  temporalNamespace: z.string().min(1).default('default'),
  /** Task queue of the control worker (workflows and cluster activities). */
  taskQueue: z.string().min(1).default('fleetmedic'),
  logLevel: z.enum(logLevels).default('info'),
  /** Where the control worker writes verified checkpoint backups; default `<stateDir>/checkpoints`. */
  backupDir: absolutePath.optional(),
  /** A YAML/JSON file listing notification sinks (see docs/observability.md); none: notifications are logged. */
  notifyConfig: absolutePath.optional(),
  /** The Temporal UI's address, for links in notifications; default the embedded stack's UI. */
  temporalUiUrl: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
  /** Port of the control worker's Prometheus endpoint (0 = any free port); unset: no endpoint. */
  metricsPort: z
    .string()
    .regex(/^\d{1,5}$/, 'a port number from 0 to 65535')
    .transform(Number)
    .refine((n) => n <= 65535, 'a port number from 0 to 65535')
    .optional(),
  /** Address the metrics endpoint binds; loopback unless a trusted network scrapes it. */
  metricsHost: z.string().min(1).default('127.0.0.1'),
});

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
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const source = overrides[key as ConfigKey] !== undefined ? `flag --${kebab(key)}` : envVarName(key);
      return `${source}=${JSON.stringify(raw[key])}: expected ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze(parsed.data);
}

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}
