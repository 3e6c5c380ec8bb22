import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { NativeConnection, Worker } from '@temporalio/worker';
import { InvalidArgumentError, Option, type Command } from 'commander';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createNodeAgentActivities } from '../../activities/node-agent.js';
import { connectionOptions } from '../../client/temporal-connection.js';
import { ConfigError, FailureType, FleetmedicError } from '../../errors.js';
import { execaRunner, type CommandRunner, type GpuTool } from '../../gpu/command-runner.js';
import { isApiError } from '../../k8s/api-errors.js';
import { makeApiClient } from '../../k8s/api-client.js';
import { readBootId } from '../../k8s/boot-id.js';
import { installRuntime } from '../../workers/runtime.js';
import { nodeTaskQueue } from '../../contracts/ids.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';
import { clusterGuard } from '../../workers/cluster-guard.js';
import { loadResetHolders } from '../../gpu/reset-holders.js';
import { onStopSignal } from '../stop-signal.js';

/**
 * The node name variable. Not `FLEETMEDIC_NODE`: the scripts read that one as the Node.js binary to
 * run with (scripts/node.sh), and a pod setting it to its node name would break them.
 */
export const AGENT_NODE_ENV = 'FLEETMEDIC_NODE_NAME';

/** How long `--version` of a tool may take at start. */
const VERSION_TIMEOUT_MS = 15_000;

interface AgentFlags {
  node: string;
  dcgmi: string;
  nvidiaSmi: string;
  queryTimeout: number;
  shutdownGrace: number;
  dcgmHost?: string;
  resetHolders?: string;
  rebootCommand?: string[];
  rebootTimeout: number;
}

/** The reboot command's flag and variable, as refusals name them. */
const REBOOT_SOURCE = '--reboot-command / FLEETMEDIC_REBOOT_COMMAND';

/**
 * Points every `dcgmi` subcommand at the DCGM host engine on `host` (`dcgmi health --host H -c -j`):
 * the engine runs on the node (GPU operator, dcgm-exporter), not in the agent's container.
 */
export function withDcgmHost(runner: CommandRunner, host: string | undefined): CommandRunner {
  if (host === undefined) return runner;
  return {
    ...(runner.exec && { exec: runner.exec.bind(runner) }),
    ...(runner.reboot && { reboot: runner.reboot.bind(runner) }),
    run(tool, args, options) {
      const routed = tool === 'dcgmi' && args.length > 0 && !args[0]!.startsWith('-');
      return runner.run(tool, routed ? [args[0]!, '--host', host, ...args.slice(1)] : args, options);
    },
  };
}

function positiveSeconds(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) {
      throw new InvalidArgumentError(
        `${flag} must be a positive number of seconds, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

/**
 * Parses the reboot command: a JSON array of strings, run as an argv without a shell, so nothing in
 * it is ever expanded or split.
 *
 * @example
 * parseRebootCommand('["nsenter","--target","1","--mount","--uts","--ipc","--net","--pid","--","systemctl","reboot"]');
 * @throws InvalidArgumentError naming the flag and its variable, and what was wrong
 */
export function parseRebootCommand(value: string): string[] {
  const refuse = (why: string) =>
    new InvalidArgumentError(
      `${REBOOT_SOURCE} must be a JSON array of strings, the argv of the command (no shell), ` +
        `e.g. ["systemctl","reboot"]: ${why}`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw refuse(`not JSON: ${JSON.stringify(value.slice(0, 200))}`);
  }
  if (!Array.isArray(parsed)) throw refuse(`got ${parsed === null ? 'null' : typeof parsed}`);
  if (parsed.length === 0) throw refuse('got an empty array');
  if (parsed.length > 64) throw refuse(`got ${parsed.length} elements, at most 64`);
  parsed.forEach((arg: unknown, i) => {
    if (typeof arg !== 'string') throw refuse(`element ${i} is ${arg === null ? 'null' : typeof arg}`);
    if (arg.includes('\0')) throw refuse(`element ${i} contains a NUL character`);
  });
  const argv = parsed as string[];
  if (argv[0] === '' || /\s/.test(argv[0]!)) {
    throw refuse(
      `the first element is the executable, got ${JSON.stringify(argv[0])} (a shell line? split it into elements)`,
    );
  }
  return argv;
}

/**
 * The executable a tool name or path stands for: a path is taken as given, a bare name is looked up
 * on `PATH` (as execa would), so the agent can say at start exactly which binary it will run.
 *
 * @throws ConfigError naming the flag and its variable when nothing executable is found.
 */
export async function resolveExecutable(
  given: string,
  source: string,
  envPath: string | undefined = process.env.PATH,
  hint = "mount the host's driver tools into the container (docs/node-agent.md) or name them with the flag",
): Promise<string> {
  const candidates = given.includes('/')
    ? [path.resolve(given)]
    : (envPath ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, given));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, fs.constants.X_OK);
      if ((await fs.stat(candidate)).isFile()) return candidate;
    } catch {
      // not here: try the next directory
    }
  }
  throw new ConfigError(
    `${source}=${JSON.stringify(given)}: ${given.includes('/') ? 'not an executable file' : 'not found on PATH'}; ${hint}`,
  );
}

/** The agent's own Node object; the only read its ServiceAccount is allowed (get nodes). */
async function readOwnNode(kc: KubeConfig, node: string): Promise<V1Node> {
  try {
    return await kc.makeApiClient(CoreV1Api).readNode({ name: node });
  } catch (err) {
    if (isApiError(err, 404)) {
      throw new FleetmedicError(
        FailureType.NodeNotFound,
        `node ${node} does not exist in the cluster: give the agent its own node's name ` +
          `(--node, or ${AGENT_NODE_ENV} from the downward API's spec.nodeName)`,
      );
    }
    if (isApiError(err, 403)) {
      throw new FleetmedicError(
        FailureType.Forbidden,
        `may not read node ${node}: the agent's ServiceAccount needs "get" on nodes`,
      );
    }
    throw err;
  }
}

/** `tool --version`, bounded; a tool that cannot tell its version will not triage a GPU either. */
async function toolVersion(runner: CommandRunner, tool: GpuTool): Promise<string> {
  const result = await runner.run(tool, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
  const text = `${result.stdout}${result.stderr}`.trim();
  if (result.exitCode !== 0) {
    throw new FleetmedicError(
      'GPU_TOOL_BROKEN',
      `${tool} --version exited ${result.exitCode}: ${text.slice(0, 500) || 'no output'}`,
    );
  }
  return text
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').trim())
    .filter(Boolean)
    .join('; ');
}

/** `fleetmedic agent`: the node agent of one real GPU node (a DaemonSet pod per node). */
export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description(
      "run the node agent of one GPU node: dcgmi / nvidia-smi activities on the node's task queue, until SIGTERM",
    )
    .addOption(
      new Option('--node <name>', "this node's name (the downward API's spec.nodeName)")
        .env(AGENT_NODE_ENV)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--dcgmi <path>', 'dcgmi: a path, or a name looked up on PATH')
        .env('FLEETMEDIC_DCGMI')
        .default('dcgmi'),
    )
    .addOption(
      new Option('--nvidia-smi <path>', 'nvidia-smi: a path, or a name looked up on PATH')
        .env('FLEETMEDIC_NVIDIA_SMI')
        .default('nvidia-smi'),
    )
    .addOption(
      new Option(
        '--dcgm-host <address>',
        "the DCGM host engine (nv-hostengine) dcgmi talks to, e.g. the node's IP (default: dcgmi's own, localhost)",
      ).env('FLEETMEDIC_DCGM_HOST'),
    )
    .addOption(
      new Option(
        '--reset-holders <file>',
        'YAML file of the GPU holders (persistence daemon, DCGM host engine, ...) stopped around a GPU reset and started again, each with its stop and start argv (docs/install-kubernetes.md); without it a reset the device refuses goes to an operator',
      ).env('FLEETMEDIC_RESET_HOLDERS'),
    )
    .addOption(
      new Option(
        '--reboot-command <json>',
        'the command that reboots this node, as a JSON array (an argv, no shell), e.g. ["nsenter","--target","1","--mount","--uts","--ipc","--net","--pid","--","systemctl","reboot"] (docs/node-agent.md); without it reboots go to an operator',
      )
        .env('FLEETMEDIC_REBOOT_COMMAND')
        .argParser(parseRebootCommand),
    )
    .addOption(
      new Option(
        '--reboot-timeout <seconds>',
        'how long the reboot command may take to schedule the reboot; one that runs longer is stopped and the reboot goes to an operator',
      )
        .argParser(positiveSeconds('--reboot-timeout'))
        .default(30),
    )
    .addOption(
      new Option('--query-timeout <seconds>', 'timeout of each quick query (health, nvidia-smi)')
        .argParser(positiveSeconds('--query-timeout'))
        .default(30),
    )
    .addOption(
      new Option(
        '--shutdown-grace <seconds>',
        "on SIGTERM, how long running activities may finish before they are cancelled (keep it below the pod's terminationGracePeriodSeconds)",
      )
        .argParser(positiveSeconds('--shutdown-grace'))
        .default(10),
    )
    .action(async (flags: AgentFlags) => {
      const config = configFrom(program);
      installRuntime(config.logLevel);
      const targets = await resolveTargets(config);
      const node = flags.node;
      // Refuse early, before polling: a wrong name would serve another node's queue, or none.
      const kc = targetKubeConfig(targets);
      await readOwnNode(kc, node);
      const paths: Record<GpuTool, string> = {
        dcgmi: await resolveExecutable(flags.dcgmi, '--dcgmi / FLEETMEDIC_DCGMI'),
        'nvidia-smi': await resolveExecutable(flags.nvidiaSmi, '--nvidia-smi / FLEETMEDIC_NVIDIA_SMI'),
      };
      const resetHolders = flags.resetHolders ? await loadResetHolders(flags.resetHolders) : [];
      // Resolved now, so that a missing nsenter stops the start instead of failing the first reboot.
      const reboot = flags.rebootCommand && {
        argv: [
          await resolveExecutable(
            flags.rebootCommand[0]!,
            REBOOT_SOURCE,
            process.env.PATH,
            "the command's first element must be an executable in the agent's container (nsenter comes with the image)",
          ),
          ...flags.rebootCommand.slice(1),
        ],
        timeoutMs: flags.rebootTimeout * 1000,
      };
      const runner = withDcgmHost(execaRunner({ paths, ...(reboot && { reboot }) }), flags.dcgmHost);
      const versions = {
        'nvidia-smi': await toolVersion(runner, 'nvidia-smi'),
        dcgmi: await toolVersion(runner, 'dcgmi'),
      };
      const connection = await NativeConnection.connect(connectionOptions(targets.temporal));
      const taskQueue = nodeTaskQueue(targets.clusterId, node);
      const worker = await Worker.create({
        connection,
        namespace: targets.namespace,
        taskQueue,
        identity: `fleetmedic agent ${node} (${os.hostname()}, pid ${process.pid})`,
        activities: createNodeAgentActivities({
          clusterId: targets.clusterId,
          node,
          runner,
          queryTimeoutMs: flags.queryTimeout * 1000,
          resetHolders,
          readBootId: () => readBootId(makeApiClient(kc, CoreV1Api), node),
        }),
        interceptors: { activity: [clusterGuard(targets.clusterId)] },
        activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 1 },
        maxConcurrentActivityTaskExecutions: 4,
        // Shorter than the pod's grace period: a running attempt fails (and is retried at once by the
        // next agent) instead of being killed without a word and waiting out its heartbeat timeout.
        shutdownGraceTime: flags.shutdownGrace * 1000,
      });
      // Also while dcgmi or nvidia-smi runs (see onStopSignal): a SIGTERM then is a graceful stop too.
      onStopSignal((sig) => {
        process.stderr.write(
          `node agent ${node}: ${sig}, stopping (running activities get ${flags.shutdownGrace} s, then are cancelled and retried)\n`,
        );
        if (worker.getState() === 'RUNNING') worker.shutdown();
      });
      process.stderr.write(
        `node agent for node ${node} of cluster ${targets.clusterId} on task queue ${taskQueue}\n` +
          `  nvidia-smi ${paths['nvidia-smi']}: ${versions['nvidia-smi']}\n` +
          `  dcgmi ${paths.dcgmi}: ${versions.dcgmi}; host engine ${flags.dcgmHost ?? 'dcgmi default (localhost)'}\n` +
          `  GPU reset: ${
            resetHolders.length > 0
              ? `stops and restarts ${resetHolders.map((h) => h.name).join(', ')} around it`
              : 'no reset holders configured (a reset the device refuses goes to an operator)'
          }\n` +
          `  reboot: ${
            reboot
              ? `enabled, runs ${JSON.stringify(reboot.argv)} (at most ${flags.rebootTimeout} s)`
              : 'disabled, no --reboot-command (a reboot goes to an operator)'
          }\n`,
      );
      await worker.run();
      await connection.close();
      process.stderr.write(`node agent ${node}: stopped\n`);
    });
}
