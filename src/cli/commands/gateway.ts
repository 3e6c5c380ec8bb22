import { InvalidArgumentError, type Command } from 'commander';
import { pino, type Logger } from 'pino';
import { ConfigError } from '../../errors.js';
import type { Config } from '../../config/config.js';
import { parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from '../../gateway/config.js';
import { startGateway } from '../../gateway/server.js';
import { startStandin } from '../../gateway/standin.js';
import { assertLoopbackAddress } from '../../k8s/loopback.js';
import { configFrom } from '../context.js';
import { untilStopSignal } from '../stop-signal.js';

/** Where the gateway commands write; tests capture it. */
export interface GatewayCommandIo {
  stderr(text: string): void;
}

const processIo: GatewayCommandIo = { stderr: (t) => process.stderr.write(t) };

function int(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) {
      throw new InvalidArgumentError(`${flag} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').filter((v) => v !== '')];
}

/** The flags of `fleetmedic gateway serve`, as commander parses them. */
export interface ServeOptions {
  host: string;
  port: number;
  /** On SIGTERM, the longest drain of client connections (0: stop at once). */
  drainSeconds?: number;
  replica?: string[];
  deployment?: string;
  deploymentPort?: number;
  fallbackUrl?: string;
  fallbackModel?: string;
  failureThreshold?: number;
  halfOpenAfter?: number;
  requestTimeout?: number;
  ttfbTimeout?: number;
  streamIdleTimeout?: number;
  connectTimeout?: number;
  retryBudgetPercent?: number;
  retryMinConcurrent?: number;
  maxAttempts?: number;
  maxConcurrent?: number;
  keepAliveTimeout?: number;
  retryAfter?: number;
  healthPath?: string;
  healthInterval?: number;
  oomStatus?: number;
  oomPattern?: string;
  continuation?: boolean;
  anyAddress?: boolean;
  logFile?: string;
  verbose?: boolean;
}

/**
 * Where `--deployment` reads the cluster: the configuration's explicit kubeconfig
 * (`--kubeconfig`, FLEETMEDIC_KUBECONFIG) or, with FLEETMEDIC_IN_CLUSTER=true, the pod's
 * ServiceAccount. Never ~/.kube/config.
 */
export interface GatewayKubeTarget {
  readonly kubeconfig?: string | undefined;
  readonly inCluster: boolean;
}

/**
 * Builds the gateway settings from the flags; zod fills in the rest and names bad fields. In a pod
 * (`inCluster`) the cluster is real: replica and fallback addresses outside loopback are allowed,
 * as with `--any-address`, and so is a non-loopback `--host`.
 */
export function gatewayInput(opts: ServeOptions, target: GatewayKubeTarget): GatewayConfigInput {
  const defined = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  let kube: GatewayConfigInput['kube'];
  if (opts.deployment !== undefined) {
    const [namespace, name, ...rest] = opts.deployment.split('/');
    if (!namespace || !name || rest.length > 0) {
      throw new ConfigError(
        `--deployment must be <namespace>/<name>, got ${JSON.stringify(opts.deployment)}`,
      );
    }
    if (!target.inCluster && !target.kubeconfig) {
      throw new ConfigError(
        '--deployment needs explicit credentials: --kubeconfig <file> or FLEETMEDIC_KUBECONFIG, or ' +
          'FLEETMEDIC_IN_CLUSTER=true in a pod (its ServiceAccount); never ~/.kube/config',
      );
    }
    kube = defined({
      namespace,
      deployment: name,
      ...(target.inCluster ? { inCluster: true } : { kubeconfig: target.kubeconfig }),
      port: opts.deploymentPort,
    });
  }
  const realCluster = opts.anyAddress === true || target.inCluster;
  return defined({
    host: opts.host,
    port: opts.port,
    replicas: opts.replica ?? [],
    kube,
    fallbackUrl: opts.fallbackUrl,
    fallbackModel: opts.fallbackModel,
    breaker: defined({ failureThreshold: opts.failureThreshold, halfOpenAfterMs: opts.halfOpenAfter }),
    timeouts: defined({
      requestMs: opts.requestTimeout,
      ttfbMs: opts.ttfbTimeout,
      streamIdleMs: opts.streamIdleTimeout,
      connectMs: opts.connectTimeout,
    }),
    retry: defined({
      budgetPercent: opts.retryBudgetPercent,
      minConcurrent: opts.retryMinConcurrent,
      maxAttempts: opts.maxAttempts,
    }),
    maxConcurrent: opts.maxConcurrent,
    keepAliveMs: opts.keepAliveTimeout,
    retryAfterSeconds: opts.retryAfter,
    health: defined({ path: opts.healthPath, intervalMs: opts.healthInterval }),
    oom: defined({ status: opts.oomStatus, bodyPattern: opts.oomPattern }),
    continuation: opts.continuation,
    loopbackOnly: realCluster ? false : undefined,
  });
}

/**
 * The gateway's settings from its flags and the configuration (credentials; `loadConfig` has
 * already refused FLEETMEDIC_IN_CLUSTER=true together with a kubeconfig).
 *
 * @throws ConfigError or NonLoopbackAddressError, naming the flag or address at fault.
 */
export function serveConfig(
  opts: ServeOptions,
  config: Pick<Config, 'kubeconfig' | 'inCluster'>,
): GatewayConfig {
  return parseGatewayConfig(
    gatewayInput(opts, { kubeconfig: config.kubeconfig, inCluster: config.inCluster }),
  );
}

/**
 * JSON logs: to --log-file; to stderr with --verbose (debug) or at the configured level when one
 * is given (FLEETMEDIC_LOG_LEVEL or --log-level, as the chart sets it); else none.
 */
function logger(opts: ServeOptions, level: Config['logLevel'] | undefined): Logger {
  if (opts.logFile)
    return pino({ name: 'fleetmedic-gateway' }, pino.destination({ dest: opts.logFile, mkdir: true }));
  return pino(
    { name: 'fleetmedic-gateway', level: opts.verbose ? 'debug' : (level ?? 'silent') },
    pino.destination(2),
  );
}

/** `fleetmedic gateway serve` (the inference gateway) and `fleetmedic gateway standin` (a fake replica). */
export function registerGatewayCommands(program: Command, io: GatewayCommandIo = processIo): void {
  const gateway = program
    .command('gateway')
    .description('inference gateway: circuit breakers, retries and fallback in front of model replicas');

  gateway
    .command('serve')
    .description(
      'serve the OpenAI-compatible gateway until interrupted (binds 127.0.0.1; another address only on a real cluster; see docs/gateway.md)',
    )
    .option(
      '--host <address>',
      'address to bind; a non-loopback one only on a real cluster (--any-address or FLEETMEDIC_IN_CLUSTER=true)',
      '127.0.0.1',
    )
    .option('--port <port>', 'port to listen on', int('--port'), 8090)
    .option('--replica <url>', 'a static replica base URL (repeat, or separate with commas)', collect)
    .option(
      '--deployment <namespace/name>',
      "watch this Deployment's pods (needs --kubeconfig, or FLEETMEDIC_IN_CLUSTER=true in a pod)",
    )
    .option(
      '--deployment-port <port>',
      "the replicas' port in the pods (default 8080)",
      int('--deployment-port'),
    )
    .option('--fallback-url <url>', 'fallback model service (OpenAI-compatible base URL)')
    .option('--fallback-model <name>', 'model name sent to the fallback service')
    .option(
      '--failure-threshold <n>',
      'consecutive failures that open a breaker (default 5)',
      int('--failure-threshold'),
    )
    .option('--half-open-after <ms>', 'open breaker to half-open (default 60000)', int('--half-open-after'))
    .option(
      '--request-timeout <ms>',
      'whole request, all attempts (default 300000)',
      int('--request-timeout'),
    )
    .option('--ttfb-timeout <ms>', 'per attempt, until the first byte (default 60000)', int('--ttfb-timeout'))
    .option('--stream-idle-timeout <ms>', 'between two chunks (default 30000)', int('--stream-idle-timeout'))
    .option('--connect-timeout <ms>', 'TCP connect (default 2000)', int('--connect-timeout'))
    .option(
      '--retry-budget-percent <n>',
      'concurrent retries, % of active requests (default 20)',
      int('--retry-budget-percent'),
    )
    .option(
      '--retry-min-concurrent <n>',
      'concurrent retries always allowed (default 3)',
      int('--retry-min-concurrent'),
    )
    .option(
      '--max-attempts <n>',
      'attempts per request, the first included (default 3)',
      int('--max-attempts'),
    )
    .option(
      '--max-concurrent <n>',
      'requests in flight before shedding with 429 (default 1024)',
      int('--max-concurrent'),
    )
    .option('--retry-after <s>', 'Retry-After of a shed request (default 1)', int('--retry-after'))
    .option('--health-path <path>', 'active health check path (default /health)')
    .option(
      '--health-interval <ms>',
      'health check interval, jittered by 20 % (default 5000)',
      int('--health-interval'),
    )
    .option('--oom-status <code>', 'status of an out-of-memory answer (default 500)', int('--oom-status'))
    .option('--oom-pattern <regex>', 'body pattern of an out-of-memory answer')
    .option('--continuation', 'continue broken streams on another replica (llama.cpp replicas only)')
    .option(
      '--any-address',
      'a real cluster: allow --host, replica and fallback addresses outside 127.0.0.0/8 (implied by FLEETMEDIC_IN_CLUSTER=true)',
    )
    .option(
      '--keep-alive-timeout <ms>',
      'idle client connections close after this (the Keep-Alive hint; default 65000); shorter than the drain for clients that reach the pods through a ClusterIP Service',
      int('--keep-alive-timeout'),
    )
    .option(
      '--drain-seconds <s>',
      'on SIGTERM: answer with Connection: close and /healthz 503 until no client connection is left, at most this long, then stop (default 5; SIGINT stops at once)',
      int('--drain-seconds'),
      5,
    )
    .option('--log-file <file>', 'write JSON logs to this file')
    .option('--verbose', 'write JSON logs to stderr')
    .action(async (opts: ServeOptions) => {
      const settings = configFrom(program);
      const config = serveConfig(opts, settings);
      const levelGiven =
        program.opts<{ logLevel?: string }>().logLevel !== undefined ||
        (process.env.FLEETMEDIC_LOG_LEVEL ?? '') !== '';
      const log = logger(opts, levelGiven ? settings.logLevel : undefined);
      const running = await startGateway(config, {
        onDiscoveryError: (err) => log.warn({ err }, 'pod watch failed; restarting it'),
      });
      log.info({ url: running.url, replicas: running.replicas.list().map((r) => r.id) }, 'gateway started');
      io.stderr(
        `gateway on ${running.url}: ${running.replicas.list().length} replica(s) now` +
          `${config.kube ? `, watching ${config.kube.namespace}/${config.kube.deployment}` : ''}` +
          `${config.fallbackUrl ? `, fallback ${config.fallbackUrl}` : ''}\n`,
      );
      const signal = await untilStopSignal();
      const drainSeconds = opts.drainSeconds ?? 5;
      if (signal === 'SIGTERM' && drainSeconds > 0) {
        log.info({ maxSeconds: drainSeconds }, 'draining client connections');
        const { openAtLimit } = await running.drain(drainSeconds * 1000);
        if (openAtLimit > 0) {
          log.warn({ openAtLimit }, 'client connections still open at the end of the drain were closed');
        }
      } else {
        await running.close();
      }
      log.info('gateway stopped');
    });

  gateway
    .command('standin')
    .description('run a stand-in inference replica (tests and benchmarks; faults via POST /admin/faults)')
    .option('--host <address>', 'loopback address to bind (127.0.0.0/8)', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any)', int('--port'), 0)
    .option('--service-ms <ms>', 'service time per request', int('--service-ms'), 20)
    .option('--concurrency <n>', 'requests served at once; more wait', int('--concurrency'), 4)
    .option('--tokens <n>', 'words per answer without max_tokens', int('--tokens'), 8)
    .option('--model <name>', 'model name in answers', 'standin')
    .action(
      async (opts: {
        host: string;
        port: number;
        serviceMs: number;
        concurrency: number;
        tokens: number;
        model: string;
      }) => {
        const standin = await startStandin({ ...opts, host: assertLoopbackAddress(opts.host) });
        io.stderr(`stand-in replica on ${standin.url} (${opts.serviceMs} ms, ${opts.concurrency} at once)\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          const onTerm = () => {
            if (!standin.faults.ignoreSigterm) return resolve();
            io.stderr('ignoring SIGTERM (fault switch ignoreSigterm)\n');
            process.once('SIGTERM', onTerm);
          };
          process.once('SIGTERM', onTerm);
        });
        await standin.close();
      },
    );
}
