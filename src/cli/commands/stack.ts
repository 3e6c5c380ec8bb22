import { InvalidArgumentError, type Command } from 'commander';
import path from 'node:path';
import { isRunning } from '../../stack/processes.js';
import { readStackState } from '../../stack/state.js';
import { DEFAULT_PORTS, down, stackHealth, up, type StackPorts } from '../../stack/stack.js';
import { doctor } from '../../stack/doctor.js';
import { MAX_SIM_NODES } from '../../stack/sim-nodes.js';
import type { Config } from '../../config/config.js';
import { configFrom } from '../context.js';
import { onStopSignal } from '../stop-signal.js';

function intIn(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

const port = (name: string) => intIn(name, 1, 65535);
const stderr = (line: string) => process.stderr.write(`${line}\n`);

/** `fleetmedic up|down|stack status|doctor`: the embedded local stack. */
export function registerStackCommands(program: Command): void {
  program
    .command('up')
    .description(
      'start the embedded stack: Temporal dev server + Kubernetes control plane with simulated GPU nodes',
    )
    .option('--nodes <n>', 'simulated GPU nodes', intIn('--nodes', 1, MAX_SIM_NODES), 4)
    .option('--cluster-name <name>', 'name of the simulated cluster (and its default cluster ID)')
    .option('--temporal-port <port>', 'Temporal frontend port', port('--temporal-port'))
    .option('--ui-port <port>', 'Temporal UI port', port('--ui-port'))
    .option('--apiserver-port <port>', 'kube-apiserver port', port('--apiserver-port'))
    .option(
      '--no-runner',
      'do not start the process runner (pods labelled fleetmedic.io/process stay not Ready)',
    )
    .action(
      async (opts: {
        nodes: number;
        clusterName?: string;
        temporalPort?: number;
        uiPort?: number;
        apiserverPort?: number;
        runner: boolean;
      }) => {
        const config = configFrom(program);
        const ports: { -readonly [K in keyof StackPorts]?: StackPorts[K] } = {};
        if (opts.temporalPort) {
          ports.temporal = opts.temporalPort;
          // The HTTP API and metrics ports follow the frontend unless the defaults are in use.
          ports.temporalHttp = opts.temporalPort + (DEFAULT_PORTS.temporalHttp - DEFAULT_PORTS.temporal);
          ports.temporalMetrics =
            opts.temporalPort + (DEFAULT_PORTS.temporalMetrics - DEFAULT_PORTS.temporal);
        }
        if (opts.uiPort) ports.temporalUi = opts.uiPort;
        if (opts.apiserverPort) ports.apiserver = opts.apiserverPort;
        // Ctrl-C (or SIGTERM) during the start: stop what it started instead of leaving detached
        // processes behind that no record names.
        const controller = new AbortController();
        const dispose = onStopSignal(() => {
          stderr('interrupted: stopping what up has started');
          controller.abort();
        });
        let result;
        try {
          result = await up(config, {
            nodes: opts.nodes,
            ports,
            clusterName: opts.clusterName,
            runner: opts.runner,
            log: stderr,
            signal: controller.signal,
          });
        } catch (err) {
          if (!controller.signal.aborted) throw err;
          stderr('fleetmedic up interrupted: nothing it started is left running');
          process.exitCode = 130;
          return;
        } finally {
          dispose();
        }
        const s = result.state;
        const headline =
          result.outcome === 'already-running'
            ? `fleetmedic stack already running (started ${s.startedAt})`
            : `fleetmedic stack ready in ${result.seconds.toFixed(1)} s`;
        process.stdout.write(
          [
            headline,
            `  cluster        ${s.clusterName} (cluster ID ${s.clusterId}), ${s.nodes} simulated GPU nodes`,
            `  kube-apiserver ${s.kube.apiserverUrl}`,
            `  kubeconfig     ${s.kube.kubeconfig}`,
            `  Temporal       ${s.temporal.address} (namespace ${s.temporal.namespace})`,
            `  Temporal UI    ${s.temporal.uiUrl}`,
            ...(s.runner
              ? [
                  `  runner         pid ${s.runner.process.pid} (${path.join(config.stateDir, 'runner', 'runner.log')})`,
                ]
              : []),
            `  state          ${config.stateDir}`,
            '',
          ].join('\n'),
        );
      },
    );

  program
    .command('down')
    .description('stop exactly the processes `up` started')
    .option('--purge', 'also delete the cluster and the Temporal database')
    .action(async (opts: { purge?: boolean }) => {
      const config = configFrom(program);
      const result = await down(config, { purge: opts.purge ?? false, log: stderr });
      process.stdout.write(
        result === 'stopped' ? 'fleetmedic stack stopped\n' : 'no fleetmedic stack was running\n',
      );
    });

  program
    .command('stack')
    .description('the embedded stack in detail')
    .command('status')
    .description('the embedded stack and the health of each component (exit 3: none recorded, 1: unhealthy)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await printStackStatus(configFrom(program), opts);
    });

  program
    .command('doctor')
    .description("print every component's version and health")
    .action(async () => {
      const config = configFrom(program);
      const report = await doctor(config);
      for (const line of report.lines) process.stdout.write(`${line}\n`);
      if (!report.ok) process.exitCode = 1;
    });
}

/**
 * Prints the embedded stack recorded in the state directory and the health of each component;
 * returns the exit code: 0 healthy, 1 unhealthy, 3 when no stack is recorded.
 */
export async function printStackStatus(config: Config, opts: { json?: boolean }): Promise<number> {
  const state = await readStackState(config.stateDir);
  if (!state) {
    if (opts.json) process.stdout.write(JSON.stringify({ running: false }) + '\n');
    else process.stdout.write(`no fleetmedic stack is recorded in ${config.stateDir}\n`);
    return 3;
  }
  const health = await stackHealth(state);
  if (opts.json) {
    process.stdout.write(JSON.stringify({ running: true, ...health, state }, null, 2) + '\n');
  } else {
    process.stdout.write(
      [
        `fleetmedic stack ${health.healthy ? 'healthy' : 'UNHEALTHY'} (started ${state.startedAt})`,
        `  cluster        ${state.clusterName}: ${health.readyNodes}/${state.nodes} simulated nodes Ready`,
        `  kube-apiserver ${state.kube.apiserverUrl}`,
        `  Temporal       ${state.temporal.address}, UI ${state.temporal.uiUrl}`,
        ...(state.runner
          ? [
              `  runner         pid ${state.runner.process.pid}: ${(await isRunning(state.runner.process)) ? 'running' : 'NOT running (`fleetmedic up` starts it again)'}`,
            ]
          : []),
        ...health.problems.map((p) => `  problem: ${p}`),
        '',
      ].join('\n'),
    );
  }
  return health.healthy ? 0 : 1;
}
