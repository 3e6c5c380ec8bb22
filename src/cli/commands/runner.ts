import type { Command } from 'commander';
import { pino } from 'pino';
import { ConfigError } from '../../errors.js';
import { ProcessRunner } from '../../runner/process-runner.js';
import { assertSimulatedCluster } from '../../stack/sim-cluster.js';
import { findInference } from '../../toolchain/inference.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';

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
        log: (message, fields) => log.info(fields ?? {}, message),
      });
      await runner.start();
      process.stderr.write(
        `process runner watching pods labelled fleetmedic.io/process (logs: ${logFile}` +
          `${inference.missing ? `; llama-server pods wait: ${inference.missing}` : ''})\n`,
      );
      await new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
      });
      process.stderr.write("stopping the processes of the runner's pods\n");
      await runner.stop();
    });
}
