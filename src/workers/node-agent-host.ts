import { Worker, type NativeConnection } from '@temporalio/worker';
import { createNodeAgentActivities } from '../activities/node-agent.js';
import type { CommandRunner } from '../gpu/command-runner.js';
import { nodeTaskQueue } from '../contracts/ids.js';
import { clusterGuard } from './cluster-guard.js';

export interface NodeAgentHostOptions {
  readonly connection: NativeConnection;
  readonly clusterId: string;
  readonly nodes: readonly string[];
  readonly runnerFor: (node: string) => CommandRunner;
  readonly namespace?: string;
  /** Reads a node's boot ID (e.g. `simulatedBoot(kc).read`); without it the agents cannot reboot. */
  readonly readBootId?: (node: string) => Promise<string>;
}

/**
 * Node agents for many nodes in one process: one Worker per node task queue, each with a single
 * poller and a few activity slots, sharing one connection. In production each GPU node runs its own
 * agent (a DaemonSet); a simulation of hundreds of nodes cannot afford a process per node.
 */
export async function createNodeAgentWorkers(options: NodeAgentHostOptions): Promise<Worker[]> {
  const workers: Worker[] = [];
  for (const node of options.nodes) {
    workers.push(
      await Worker.create({
        connection: options.connection,
        namespace: options.namespace ?? 'default',
        taskQueue: nodeTaskQueue(options.clusterId, node),
        activities: createNodeAgentActivities({
          clusterId: options.clusterId,
          node,
          runner: options.runnerFor(node),
          ...(options.readBootId && { readBootId: () => options.readBootId!(node) }),
        }),
        // One long poll per agent. @temporalio/worker 1.24 ignores `maxConcurrentActivityTaskPolls`
        // (its default poller behaviour keeps several polls open per queue: 4 per agent, thousands
        // for a simulated fleet); the poller behaviour is what it honours.
        activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 1 },
        maxConcurrentActivityTaskExecutions: 4,
        interceptors: { activity: [clusterGuard(options.clusterId)] },
      }),
    );
  }
  return workers;
}

/** Runs workers until `signal` aborts, then shuts them down together. */
export async function runWorkers(workers: readonly Worker[], signal: AbortSignal): Promise<void> {
  const stop = () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  signal.addEventListener('abort', stop, { once: true });
  await Promise.all(workers.map((w) => w.run()));
}
