import { z } from 'zod';
import { validateInput } from '../input.js';

const notifyOperatorSchema = z.object({ message: z.string().min(1, 'must not be empty') });

/** The log line that a remediation needs an operator (see `notifyOperator`). */
export function createOperatorLogActivities() {
  return {
    /**
     * Logs that a remediation needs an operator. Only remediations recorded before the `notify-sinks`
     * patch call it; newer ones use the `notify` activity (activities/observability.ts), which sends to
     * the configured sinks.
     */
    notifyOperator(input: {
      node: string;
      workflowId: string;
      message: string;
      reminder: number;
    }): Promise<void> {
      validateInput('notifyOperator', notifyOperatorSchema, input);
      process.stderr.write(
        `${JSON.stringify({ level: 'warn', msg: 'operator needed', node: input.node, workflowId: input.workflowId, detail: input.message, reminder: input.reminder })}\n`,
      );
      return Promise.resolve();
    },
  };
}
