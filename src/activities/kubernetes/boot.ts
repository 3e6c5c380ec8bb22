/**
 * A reboot's evidence: the node's boot ID before it, and the wait for a new one. On a real node the
 * reboot kills the agent's own activity, so the control worker watches the Node instead.
 */
import type { V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../../errors.js';
import { bootIdOf } from '../../k8s/boot-id.js';
import { objectName, text, validateInput } from '../input.js';
import { activityContext, pause } from './control.js';
import type { NodeAccess } from './node-access.js';

const readSchema = z.object({ node: objectName });
const awaitSchema = z.object({
  node: objectName,
  bootIdBefore: text(256),
  deadline: z.number().int().positive(),
});

export interface AwaitNewBootInput {
  node: string;
  /** The boot the reboot replaces. */
  bootIdBefore: string;
  /** Until when to wait, in ms since the epoch (absolute, so a retried attempt keeps it). */
  deadline: number;
}

function isReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function createBootActivities(access: NodeAccess, pollMs: number) {
  return {
    /**
     * The node's boot ID (`status.nodeInfo.bootID`), read before a reboot. A node that reports none
     * fails with non-retryable `BootIdUnknown`: its reboot could not be verified.
     */
    readBootId: async (input: { node: string }): Promise<{ bootId: string }> => {
      const { node: name } = validateInput('readBootId', readSchema, input);
      const node = await access.requireNode(name);
      const bootId = bootIdOf(node);
      if (bootId === undefined) {
        throw ApplicationFailure.nonRetryable(
          `node ${name} reports no boot ID (status.nodeInfo.bootID): its reboot cannot be verified`,
          FailureType.BootIdUnknown,
        );
      }
      return { bootId };
    },

    /**
     * Waits until the node reports another boot ID than `bootIdBefore` and is Ready, re-reading it
     * every poll interval and heartbeating what it saw. Past `deadline` it fails with non-retryable
     * `RebootDeadlineExceeded`, saying what the node last showed.
     */
    awaitNewBoot: async (input: AwaitNewBootInput): Promise<{ bootId: string }> => {
      const { node: name, bootIdBefore, deadline } = validateInput('awaitNewBoot', awaitSchema, input);
      const ctx = activityContext();
      for (;;) {
        const node = await access.requireNode(name);
        const bootId = bootIdOf(node);
        const ready = isReady(node);
        if (bootId !== undefined && bootId !== bootIdBefore && ready) return { bootId };
        const seen = `boot ID ${bootId ?? 'none'}, ${ready ? 'Ready' : 'not Ready'}`;
        const now = access.now().getTime();
        if (now >= deadline) {
          throw ApplicationFailure.nonRetryable(
            `node ${name} showed no new boot by ${new Date(deadline).toISOString()} ` +
              `(boot before ${bootIdBefore}; now ${seen})`,
            FailureType.RebootDeadlineExceeded,
          );
        }
        ctx?.heartbeat({ seen });
        await pause(Math.min(pollMs, deadline - now), ctx?.cancellationSignal);
      }
    },
  };
}
