import { FleetmedicError } from '../errors.js';
import { buildProgram } from './program.js';

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
