import { Command } from 'commander';
import { addGlobalFlags } from './context.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerCheckpointCommands } from './commands/checkpoint.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerDrillCommand } from './commands/drill.js';
import { registerDrillProbeCommand } from './commands/drill-probe.js';
import { registerDrillScheduleCommands } from './commands/drill-schedule.js';
import { registerGatewayCommands } from './commands/gateway.js';
import { registerOperatorCommands } from './commands/operator.js';
import { registerRemediationCommands } from './commands/remediation.js';
import { registerReplicaCommand, registerRunnerCommand } from './commands/runner.js';
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
  registerDrillCommand(program);
  registerDrillProbeCommand(program);
  registerDrillScheduleCommands(program);
  registerWebhookCommands(program);
  registerGatewayCommands(program);
  registerRunnerCommand(program);
  registerReplicaCommand(program);
  return program;
}
