import { Client, Connection } from '@temporalio/client';
import { connectionOptions } from '../../client/temporal-connection.js';
import { drillRelease } from '../../client/drill-release.js';
import { OperatorClient } from '../../client/operator-client.js';
import { createDrillReaper, describeDrillRuns } from '../../drill/reaper.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import fs from 'node:fs/promises';
import { ConfigError, FleetmedicError } from '../../errors.js';
import { createLogger } from '../../logger.js';
import { detectFormat, parseAlertmanagerPayload, parseGenericPayload } from '../../webhook/alertmanager.js';
import { DEFAULT_MAX_SKEW_MS, loadCredentialFile, type AuthConfig } from '../../webhook/auth.js';
import { removeWebhookEndpoint, writeWebhookEndpoint } from '../../webhook/endpoint-record.js';
import { CachedNodeLookup, KubernetesNodeLookup } from '../../webhook/node-lookup.js';
import { loadRulesFile, needsNode, planPayload, type NodeFacts, type RuleSet } from '../../webhook/rules.js';
import { DEFAULT_DEDUPE_WINDOW_MS, startWebhookServer } from '../../webhook/server.js';
import { TemporalRemediationStarter } from '../../webhook/starter.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';
import { untilStopSignal } from '../stop-signal.js';

/** Where the webhook commands write; tests capture it. */
export interface WebhookCommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: WebhookCommandIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

function nonNegativeInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

function portOf(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) > 65535) {
      throw new InvalidArgumentError(`${name} must be a port number (0-65535), got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

async function readPem(file: string, option: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new ConfigError(`${option} ${file} could not be read: ${(err as Error).message}`, { cause: err });
  }
}

/** Certificate and key for HTTPS: both or neither. */
async function tlsFiles(opts: ServeOptions): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (opts.tlsCertFile === undefined && opts.tlsKeyFile === undefined) return undefined;
  if (opts.tlsCertFile === undefined || opts.tlsKeyFile === undefined) {
    throw new ConfigError(
      `--tls-cert-file (${WEBHOOK_ENV.tlsCertFile}) and --tls-key-file (${WEBHOOK_ENV.tlsKeyFile}) go together: ` +
        `got only ${opts.tlsCertFile === undefined ? '--tls-key-file' : '--tls-cert-file'}`,
    );
  }
  return {
    cert: await readPem(opts.tlsCertFile, '--tls-cert-file'),
    key: await readPem(opts.tlsKeyFile, '--tls-key-file'),
  };
}

/** Commander sets a boolean option from its variable whatever the value; only these mean yes. */
function assertBooleanEnv(name: string): void {
  const value = process.env[name];
  if (value !== undefined && value !== 'true' && value !== '1') {
    throw new ConfigError(`${name} must be "true" or "1" (or unset), got ${JSON.stringify(value)}`);
  }
}

/** The cluster ID to use: the rules file's and the configuration's must agree when both are set. */
function pickClusterId(
  rules: RuleSet,
  configured: string | undefined,
  rulesFile: string,
): string | undefined {
  if (rules.clusterId && configured && rules.clusterId !== configured) {
    throw new ConfigError(
      `rules file ${rulesFile} is for cluster ${rules.clusterId}, but the configured cluster is ${configured}`,
    );
  }
  return rules.clusterId ?? configured;
}

/** The environment variables `fleetmedic webhook serve` reads for its flags (beside the configuration's). */
export const WEBHOOK_ENV = {
  rules: 'FLEETMEDIC_WEBHOOK_RULES',
  host: 'FLEETMEDIC_WEBHOOK_HOST',
  port: 'FLEETMEDIC_WEBHOOK_PORT',
  tokenFile: 'FLEETMEDIC_WEBHOOK_TOKEN_FILE',
  hmacKeyFile: 'FLEETMEDIC_WEBHOOK_HMAC_KEY_FILE',
  tlsCertFile: 'FLEETMEDIC_WEBHOOK_TLS_CERT_FILE',
  tlsKeyFile: 'FLEETMEDIC_WEBHOOK_TLS_KEY_FILE',
  metricsHost: 'FLEETMEDIC_WEBHOOK_METRICS_HOST',
  metricsPort: 'FLEETMEDIC_WEBHOOK_METRICS_PORT',
  allowUnauthenticatedMetrics: 'FLEETMEDIC_WEBHOOK_ALLOW_UNAUTHENTICATED_METRICS',
} as const;

interface ServeOptions {
  host: string;
  port: number;
  rules: string;
  tokenFile?: string;
  hmacKeyFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  metricsHost?: string;
  metricsPort?: number;
  allowUnauthenticatedMetrics?: boolean;
  bodyLimit: number;
  rateLimit: number;
  temporalTimeout: number;
  dedupeWindow: number;
}

interface DryRunOptions {
  rules: string;
  format: 'auto' | 'alertmanager' | 'generic';
  nodes?: boolean;
}

/**
 * `fleetmedic webhook serve` (the alert intake) and `fleetmedic webhook dry-run` (what a payload
 * would do under a rules file, starting nothing).
 */
export function registerWebhookCommands(program: Command, io: WebhookCommandIo = processIo): void {
  const webhook = program
    .command('webhook')
    .description('alert intake: Alertmanager v4 and generic JSON alerts');

  webhook
    .command('serve')
    .description('serve the webhook until interrupted (binds 127.0.0.1 unless --host says otherwise)')
    // Each also from a FLEETMEDIC_WEBHOOK_* variable, so a container is configured by its environment.
    .addOption(
      new Option('--rules <file>', 'rules file (YAML or JSON): which alerts start which workflow')
        .env(WEBHOOK_ENV.rules)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--host <address>', 'address to bind; a non-loopback one requires credentials')
        .env(WEBHOOK_ENV.host)
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'port to listen on')
        .env(WEBHOOK_ENV.port)
        .argParser(portOf('--port'))
        .default(9095),
    )
    .addOption(
      new Option(
        '--token-file <file>',
        'bearer tokens, one "<caller> <token> [alerts|operator|alerts,operator]" per line (no scope: alerts)',
      ).env(WEBHOOK_ENV.tokenFile),
    )
    .addOption(
      new Option(
        '--hmac-key-file <file>',
        'HMAC signing keys, one "<key-id> <secret> [<scope>]" per line (no scope: alerts)',
      ).env(WEBHOOK_ENV.hmacKeyFile),
    )
    .addOption(
      new Option('--tls-cert-file <file>', 'serve HTTPS with this certificate chain (PEM)').env(
        WEBHOOK_ENV.tlsCertFile,
      ),
    )
    .addOption(
      new Option('--tls-key-file <file>', 'the private key (PEM) of --tls-cert-file').env(
        WEBHOOK_ENV.tlsKeyFile,
      ),
    )
    .addOption(
      new Option('--metrics-port <port>', 'serve /metrics on a listener of its own (plain HTTP) on this port')
        .env(WEBHOOK_ENV.metricsPort)
        .argParser(portOf('--metrics-port')),
    )
    .addOption(
      new Option('--metrics-host <address>', 'address of the metrics listener (default 127.0.0.1)').env(
        WEBHOOK_ENV.metricsHost,
      ),
    )
    .addOption(
      new Option(
        '--allow-unauthenticated-metrics',
        'allow /metrics (no credentials) on a non-loopback address',
      ).env(WEBHOOK_ENV.allowUnauthenticatedMetrics),
    )
    .option('--body-limit <bytes>', 'largest accepted request body', positiveInt('--body-limit'), 1024 * 1024)
    .option('--rate-limit <n>', 'requests per caller per minute', positiveInt('--rate-limit'), 3000)
    .option(
      '--temporal-timeout <ms>',
      'deadline of each Temporal call',
      positiveInt('--temporal-timeout'),
      5000,
    )
    .option(
      '--dedupe-window <ms>',
      'answer an alert identical to one Temporal acknowledged this recently from that acknowledgement (0: off)',
      nonNegativeInt('--dedupe-window'),
      DEFAULT_DEDUPE_WINDOW_MS,
    )
    .action(async (opts: ServeOptions) => {
      assertBooleanEnv(WEBHOOK_ENV.allowUnauthenticatedMetrics);
      if (opts.metricsHost !== undefined && opts.metricsPort === undefined) {
        throw new ConfigError(`--metrics-host (${WEBHOOK_ENV.metricsHost}) needs --metrics-port`);
      }
      const tls = await tlsFiles(opts);
      const config = configFrom(program);
      const rules = await loadRulesFile(opts.rules);
      const targets = await resolveTargets(config);
      const clusterId = pickClusterId(rules, targets.clusterId, opts.rules)!;
      const taskQueue = rules.taskQueue ?? targets.taskQueue;
      const auth: AuthConfig = {
        tokens: opts.tokenFile
          ? (await loadCredentialFile(opts.tokenFile, 'token')).map(({ secret, ...c }) => ({
              ...c,
              token: secret,
            }))
          : [],
        hmacKeys: opts.hmacKeyFile ? await loadCredentialFile(opts.hmacKeyFile, 'HMAC key') : [],
        maxSkewMs: DEFAULT_MAX_SKEW_MS,
      };
      const logger = createLogger(config.logLevel, 'fleetmedic-webhook');
      // Lazy: a webhook that is up and answering 503 (Alertmanager retries) beats one that crash-loops
      // while Temporal restarts.
      const connection = Connection.lazy(connectionOptions(targets.temporal));
      // Not awaited: the server starts at once, and says so when Temporal is not there yet.
      connection.ensureConnected().catch((err: unknown) => {
        logger.warn(
          { err, address: targets.temporalAddress },
          'Temporal not reachable yet; answering 503 until it is',
        );
      });
      const client = new Client({ connection, namespace: targets.namespace });
      const running = await startWebhookServer({
        host: opts.host,
        port: opts.port,
        clusterId,
        taskQueue,
        rules,
        auth,
        starter: new TemporalRemediationStarter(client, opts.temporalTimeout),
        // Operator actions over HTTP (docs/operator.md), behind the same credentials.
        operator: new OperatorClient(client, {
          clusterId,
          taskQueue,
          address: targets.temporalAddress,
          timeoutMs: opts.temporalTimeout,
        }),
        // release of a node a drill cordoned: the drill reaper's pass for it, as with the CLI.
        releaseDrill: drillRelease(
          createDrillReaper({
            kc: targetKubeConfig(targets),
            clusterId,
            describe: describeDrillRuns(client, opts.temporalTimeout),
          }),
        ),
        nodes: new CachedNodeLookup(new KubernetesNodeLookup(targetKubeConfig(targets))),
        limits: { bodyLimitBytes: opts.bodyLimit, rateLimitMax: opts.rateLimit, rateLimitWindowMs: 60_000 },
        dedupeWindowMs: opts.dedupeWindow,
        logger,
        ...(tls && { tls }),
        ...(opts.metricsPort !== undefined && {
          metricsListener: { port: opts.metricsPort, ...(opts.metricsHost && { host: opts.metricsHost }) },
        }),
        allowUnauthenticatedMetrics: opts.allowUnauthenticatedMetrics === true,
      });
      io.stderr(
        `webhook for cluster ${clusterId} on ${running.url} (task queue ${taskQueue}, mode ${rules.mode}, ` +
          `${rules.rules.length} rule(s), ${auth.tokens.length} token(s), ${auth.hmacKeys.length} HMAC key(s)), ` +
          `metrics on ${running.metricsUrl}\n`,
      );
      // So that `fleetmedic sim inject` finds this webhook through the state directory.
      await writeWebhookEndpoint(config.stateDir, {
        version: 1,
        url: running.url,
        pid: process.pid,
        clusterId,
        startedAt: new Date().toISOString(),
      });
      await untilStopSignal();
      await removeWebhookEndpoint(config.stateDir, process.pid);
      // close() lets requests in flight finish, so no acknowledged alert goes unanswered.
      await running.close();
      await connection.close();
    });

  webhook
    .command('dry-run <payload>')
    .description('show what a payload (a JSON file) would do under the rules, starting nothing')
    .requiredOption('--rules <file>', 'rules file (YAML or JSON)')
    .option('--format <format>', 'alertmanager | generic | auto', 'auto')
    .option('--nodes', 'read the nodes from the cluster to evaluate opt-out and node selectors')
    .action(async (payloadFile: string, opts: DryRunOptions) => {
      if (!['auto', 'alertmanager', 'generic'].includes(opts.format)) {
        throw new InvalidArgumentError(`--format must be alertmanager, generic or auto, got ${opts.format}`);
      }
      const config = configFrom(program);
      const rules = await loadRulesFile(opts.rules);
      let body: unknown;
      try {
        body = JSON.parse(await fs.readFile(payloadFile, 'utf8'));
      } catch (err) {
        throw new FleetmedicError('INVALID_PAYLOAD', `payload ${payloadFile}: ${(err as Error).message}`);
      }
      const format = opts.format === 'auto' ? detectFormat(body) : opts.format;
      const parsed =
        format === 'alertmanager' ? parseAlertmanagerPayload(body, rules.fields) : parseGenericPayload(body);
      if (!parsed.ok) {
        throw new FleetmedicError(
          'INVALID_PAYLOAD',
          `${parsed.error}\n${parsed.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
        );
      }
      let clusterId = pickClusterId(rules, config.clusterId, opts.rules);
      const facts = new Map<string, NodeFacts | null>();
      if (opts.nodes) {
        const targets = await resolveTargets(config);
        clusterId = pickClusterId(rules, targets.clusterId, opts.rules);
        const lookup = new KubernetesNodeLookup(targetKubeConfig(targets));
        for (const name of new Set(
          parsed.payload.alerts.filter((a) => needsNode(rules, a)).map((a) => a.node),
        )) {
          facts.set(name, await lookup.get(name));
        }
      }
      const plans = planPayload(
        rules,
        clusterId ?? '<cluster>',
        parsed.payload,
        (name) => facts.get(name),
        `${parsed.payload.origin} (dry-run)`,
      );
      io.stdout(
        `${JSON.stringify(
          {
            dryRun: true,
            format,
            mode: rules.mode,
            nodeChecks: opts.nodes ? 'evaluated' : 'not evaluated (pass --nodes to read the cluster)',
            alerts: plans,
          },
          null,
          2,
        )}\n`,
      );
    });
}
