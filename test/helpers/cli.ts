import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import type { TestStack } from './stack.js';

/** The CLI entry point, as an operator runs it. */
export const CLI = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));

/**
 * A `fleetmedic <args>` runner against the test stack (its state directory, as `fleetmedic up`
 * recorded it) with the control worker on `taskQueue`; the runs never reject: tests read the exit code.
 */
export function stackCli(stack: () => TestStack, taskQueue: string) {
  return (...args: string[]) =>
    execa(process.execPath, [CLI, ...args], {
      reject: false,
      env: {
        ...process.env,
        FLEETMEDIC_STATE_DIR: stack().config.stateDir,
        FLEETMEDIC_TASK_QUEUE: taskQueue,
        FLEETMEDIC_LOG_LEVEL: 'warn',
      },
    });
}
