import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import { ConfigError } from '../../errors.js';
import { ProcessRunner } from '../../runner/process-runner.js';
import { startReplica } from '../../runner/replica.js';
import { assertSimulatedCluster } from '../../stack/sim-cluster.js';
import { findInference } from '../../toolchain/inference.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';
import { onStopSignal, untilStopSignal } from '../stop-signal.js';

/**
 * `fleetmedic runner`: the process runner of the embedded stack. Pods on simulated nodes labelled
 * `fleetmedic.io/process` get a real local process on their 127.x pod IP (docs/inference.md).
 */
export function registerRunnerCommand(program: Command): void {
  program
    .command('runner')
    .description(
      'run real local processes for the pods of simulated nodes labelled fleetmedic.io/process (embedded stack only)',
    )
    .option('--log-file <file>', 'write JSON logs to this file (default <state-dir>/runner/runner.log)')
    .option('--verbose', 'write JSON logs to stderr too')
    .action(async (opts: { logFile?: string; verbose?: boolean }) => {
      const config = configFrom(program);
      const targets = await resolveTargets(config);
      if (targets.inCluster) throw new ConfigError('the process runner serves simulated clusters only');
      const kc = targetKubeConfig(targets);
      await assertSimulatedCluster(kc);
      const logFile = opts.logFile ?? `${config.stateDir}/runner/runner.log`;
      const log = pino(
        { name: 'fleetmedic-runner' },
        pino.multistream([
          { stream: pino.destination({ dest: logFile, mkdir: true }) },
          ...(opts.verbose ? [{ stream: pino.destination(2) }] : []),
        ]),
      );
      const inference = await findInference({ cacheDir: config.cacheDir });
      const runner = new ProcessRunner({
        kc,
        stateDir: config.stateDir,
        inference: inference.artifacts,
        ...(targets.kubeconfig !== undefined && { kubeconfig: targets.kubeconfig }),
        log: (message, fields) => log.info(fields ?? {}, message),
      });
      // Before the start: `up` returns once the runner holds its lock, early in start(), and a
      // SIGTERM from `down` that came before a handler would kill it with its lock left behind.
      const stopping = untilStopSignal();
      await runner.start();
      process.stderr.write(
        `process runner watching pods labelled fleetmedic.io/process (logs: ${logFile}` +
          `${inference.missing ? `; llama-server pods wait: ${inference.missing}` : ''})\n`,
      );
      await stopping;
      process.stderr.write("stopping the processes of the runner's pods\n");
      await runner.stop();
    });
}

/**
 * `fleetmedic replica`: one llama.cpp replica of the embedded stack, as the process runner starts it
 * for a `llama-server` pod with a `ready` port: restore the model and the slot from the checkpoint
 * store, then answer Ready (src/runner/replica.ts). Not meant to be run by hand.
 */
export function registerReplicaCommand(program: Command): void {
  program
    .command('replica', { hidden: true })
    .description('run one llama.cpp replica that restores from verified checkpoints before it turns Ready')
    .requiredOption('--llama-server <file>', 'the llama-server binary')
    .requiredOption('--model <file>', 'the model served when there is no checkpoint store')
    .requiredOption('--host <ip>', "the pod's IP (loopback only)")
    .requiredOption('--port <n>', "llama-server's port", parsePort)
    .requiredOption('--ready-port <n>', 'port of the readiness endpoint (/ready, /phases)', parsePort)
    .requiredOption('--slot-dir <dir>', "llama-server's --slot-save-path")
    .option('--store <dir>', 'checkpoint store: the newest verified gguf and llama-slot backups are restored')
    .option('--ctx-size <n>', 'context size', parsePositive, 2048)
    .option('--parallel <n>', 'parallel slots', parsePositive, 2)
    .action(
      async (opts: {
        llamaServer: string;
        model: string;
        host: string;
        port: number;
        readyPort: number;
        slotDir: string;
        store?: string;
        ctxSize: number;
        parallel: number;
      }) => {
        const line = (text: string) => process.stdout.write(`[replica] ${text}\n`);
        const replica = await startReplica({ ...opts, log: line });
        onStopSignal(() => void replica.stop());
        process.exitCode = await replica.exited;
      },
    );
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65_535) throw new InvalidArgumentError(`not a port: ${value}`);
  return n;
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`not a positive integer: ${value}`);
  return n;
}
