import { Command } from 'commander';
import { FleetmedicError } from '../errors.js';
import { addGlobalFlags } from './context.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerCheckpointCommands } from './commands/checkpoint.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerOperatorCommands } from './commands/operator.js';
import { registerRemediationCommands } from './commands/remediation.js';
import { registerStackCommands } from './commands/stack.js';
import { registerWebhookCommands } from './commands/webhook.js';
import { registerToolchainCommand } from './commands/toolchain.js';

/** The `fleetmedic` command tree. */
export function buildProgram(): Command {
  const program = new Command('fleetmedic')
    .description('Keeps GPU inference fleets on Kubernetes serving through hardware faults.')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: true });
  addGlobalFlags(program);
  registerToolchainCommand(program);
  registerStackCommands(program);
  registerRemediationCommands(program);
  registerAgentCommand(program);
  registerOperatorCommands(program);
  registerCheckpointCommands(program);
  registerDemoCommand(program);
  registerWebhookCommands(program);
  return program;
}

/** Entry point: runs the CLI and turns fleetmedic's errors into one clear line and exit code 1. */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (!(err instanceof FleetmedicError)) throw err;
    process.stderr.write(`fleetmedic: ${err.message}\n`);
    process.exitCode = 1;
  }
  // A command is done when its action returns: pooled keep-alive sockets of the Kubernetes and
  // Temporal clients must not keep the CLI alive (stdout and stderr are synchronous here on Linux).
  process.exit();
}

await main();
