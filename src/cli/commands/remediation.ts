import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { InvalidArgumentError, type Command } from 'commander';
import os from 'node:os';
import path from 'node:path';
import { createCheckpointActivities } from '../../activities/checkpoint.js';
import { FilesystemStorage } from '../../checkpoint/storage.js';
import { startOrJoinRemediation } from '../../client/remediation-client.js';
import type { AlertSignal } from '../../domain/remediation-plan.js';
import { FleetmedicError } from '../../errors.js';
import { loadKubeConfig } from '../../k8s/kubeconfig.js';
import { SIMULATED_LABEL } from '../../k8s/labels.js';
import { FileGpuStateStore, simGpuStateDir, withFault } from '../../sim/gpu-state.js';
import { simulatedRunner } from '../../sim/sim-runner.js';
import { assertSimulatedCluster, assertSimulatedNode } from '../../stack/sim-cluster.js';
import { createControlWorker } from '../../workers/control-worker.js';
import { createNodeAgentWorkers, runWorkers } from '../../workers/node-agent-host.js';
import { installRuntime } from '../../workers/runtime.js';
import { remediationWorkflowId } from '../../workflows/ids.js';
import {
  approveUpdate,
  markRepairedUpdate,
  rejectUpdate,
  statusQuery,
  type OperatorDecision,
} from '../../workflows/remediation.js';
import { configFrom, resolveTargets } from '../context.js';
import { CoreV1Api } from '@kubernetes/client-node';

function nonNegativeInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value))
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

async function client(program: Command) {
  const targets = await resolveTargets(configFrom(program));
  const connection = await Connection.connect({ address: targets.temporalAddress });
  return { targets, connection, client: new Client({ connection, namespace: targets.namespace }) };
}

function untilSignal(): AbortSignal {
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());
  return controller.signal;
}

/** Operator and worker commands of the GPU remediation. */
export function registerRemediationCommands(program: Command): void {
  program
    .command('worker')
    .description('run the control worker (workflows + cluster activities) until interrupted')
    .action(async () => {
      const config = configFrom(program);
      installRuntime(config.logLevel);
      const targets = await resolveTargets(config);
      const connection = await NativeConnection.connect({ address: targets.temporalAddress });
      const clientConnection = await Connection.connect({ address: targets.temporalAddress });
      const worker = await createControlWorker({
        connection,
        client: new Client({ connection: clientConnection, namespace: targets.namespace }),
        kc: loadKubeConfig(targets.kubeconfig),
        clusterId: targets.clusterId,
        taskQueue: targets.taskQueue,
        namespace: targets.namespace,
        extraActivities: createCheckpointActivities({
          storage: new FilesystemStorage(config.backupDir ?? path.join(config.stateDir, 'checkpoints')),
          simulated: targets.embedded,
        }),
      });
      process.stderr.write(
        `control worker for cluster ${targets.clusterId} on task queue ${targets.taskQueue}\n`,
      );
      await runWorkers([worker], untilSignal());
      await clientConnection.close();
      await connection.close();
    });

  program
    .command('agents')
    .description('host the node agents of every simulated node in one process (simulated clusters only)')
    .action(async () => {
      const config = configFrom(program);
      installRuntime(config.logLevel);
      const targets = await resolveTargets(config);
      const kc = loadKubeConfig(targets.kubeconfig);
      await assertSimulatedCluster(kc);
      const nodes = (await kc.makeApiClient(CoreV1Api).listNode({ labelSelector: `${SIMULATED_LABEL}=true` }))
        .items;
      for (const n of nodes) assertSimulatedNode(n);
      const store = new FileGpuStateStore(simGpuStateDir(config.stateDir, targets.clusterId));
      const connection = await NativeConnection.connect({ address: targets.temporalAddress });
      const workers = await createNodeAgentWorkers({
        connection,
        clusterId: targets.clusterId,
        namespace: targets.namespace,
        nodes: nodes.map((n) => n.metadata!.name!),
        runnerFor: (node) => simulatedRunner(store, node),
      });
      process.stderr.write(
        `node agents for ${workers.length} simulated nodes of cluster ${targets.clusterId}\n`,
      );
      await runWorkers(workers, untilSignal());
      await connection.close();
    });

  program
    .command('remediate <node>')
    .description('start (or join) the remediation of a node by hand')
    .option('--xid <n>', 'the XID seen', nonNegativeInt('--xid'))
    .option('--dcgm <code>', 'a DCGM health error (DCGM_FR_* name or number)')
    .option('--gpu <index>', 'the faulty GPU', nonNegativeInt('--gpu'))
    .option('--reason <text>', 'why', 'started by hand')
    .action(async (node: string, opts: { xid?: number; dcgm?: string; gpu?: number; reason: string }) => {
      const { targets, connection, client: c } = await client(program);
      const alert: AlertSignal = {
        alertName: 'ManualRemediation',
        status: 'firing',
        episodeKey: `manual:${node}:${new Date().toISOString()}`,
        source: `cli:${os.userInfo().username}: ${opts.reason}`,
        ...(opts.xid !== undefined && { xid: opts.xid }),
        ...(opts.dcgm !== undefined && { dcgmCode: opts.dcgm }),
        ...(opts.gpu !== undefined && { gpu: opts.gpu }),
      };
      const handle = await startOrJoinRemediation(c, {
        clusterId: targets.clusterId,
        node,
        taskQueue: targets.taskQueue,
        alert,
      });
      process.stdout.write(`remediation ${handle.workflowId} (run ${handle.signaledRunId})\n`);
      await connection.close();
    });

  const decision = (name: string, update: typeof approveUpdate, help: string) =>
    program
      .command(`${name} <node>`)
      .description(help)
      .option('--by <identity>', 'who decides (recorded in the history)', os.userInfo().username)
      .option('--reason <text>', 'why (recorded in the history)')
      .action(async (node: string, opts: { by: string; reason?: string }) => {
        const { targets, connection, client: c } = await client(program);
        try {
          const handle = c.workflow.getHandle(remediationWorkflowId(targets.clusterId, node));
          const args: [OperatorDecision] = [
            { by: opts.by, ...(opts.reason !== undefined && { reason: opts.reason }) },
          ];
          process.stdout.write(`${await handle.executeUpdate(update, { args })}\n`);
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) {
            throw new FleetmedicError('REFUSED', `${name} refused: ${err.cause?.message ?? err.message}`);
          }
          if (err instanceof Error && err.name === 'WorkflowNotFoundError') {
            throw new FleetmedicError(
              'NOT_FOUND',
              `no remediation of node ${node} in cluster ${targets.clusterId}`,
            );
          }
          throw err;
        } finally {
          await connection.close();
        }
      });
  decision('approve', approveUpdate, 'authorize the repair a remediation proposes');
  decision('reject', rejectUpdate, 'reject the repair: the node stays cordoned with the reason');
  decision(
    'mark-repaired',
    markRepairedUpdate,
    'after an out-of-band fix: validate and return the node to service',
  );

  program
    .command('show <node>')
    .description("a node's remediation: phase, class, reasons, what it waits for")
    .action(async (node: string) => {
      const { targets, connection, client: c } = await client(program);
      try {
        const s = await c.workflow
          .getHandle(remediationWorkflowId(targets.clusterId, node))
          .query(statusQuery);
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      } finally {
        await connection.close();
      }
    });

  const sim = program
    .command('sim')
    .description('simulated cluster tools (refused on clusters without the simulation marker)');
  sim
    .command('inject')
    .description('set a GPU fault on a simulated node and raise its alert')
    .requiredOption('--node <name>', 'simulated node')
    .option('--xid <n>', 'XID to raise', nonNegativeInt('--xid'))
    .option('--gpu <index>', 'GPU index', nonNegativeInt('--gpu'), 0)
    .option('--remapped-rows-failure', 'the GPU failed a row remap (hardware)')
    .option('--processes <n>', 'processes holding the GPU', nonNegativeInt('--processes'))
    .option('--no-alert', 'only set the fault')
    .action(
      async (opts: {
        node: string;
        xid?: number;
        gpu: number;
        remappedRowsFailure?: boolean;
        processes?: number;
        alert: boolean;
      }) => {
        const config = configFrom(program);
        const targets = await resolveTargets(config);
        const kc = loadKubeConfig(targets.kubeconfig);
        await assertSimulatedCluster(kc);
        assertSimulatedNode(await kc.makeApiClient(CoreV1Api).readNode({ name: opts.node }));
        const store = new FileGpuStateStore(simGpuStateDir(config.stateDir, targets.clusterId));
        await store.set(
          opts.node,
          withFault(await store.get(opts.node), {
            gpu: opts.gpu,
            ...(opts.xid !== undefined && { xid: opts.xid }),
            ...(opts.remappedRowsFailure && { remappedRowsFailure: true }),
            ...(opts.processes !== undefined && { processes: opts.processes }),
          }),
        );
        process.stdout.write(`fault set on ${opts.node} GPU ${opts.gpu}\n`);
        if (!opts.alert) return;
        // Until the webhook lands, the alert goes straight to Temporal the way the webhook will send it.
        const connection = await Connection.connect({ address: targets.temporalAddress });
        try {
          const handle = await startOrJoinRemediation(
            new Client({ connection, namespace: targets.namespace }),
            {
              clusterId: targets.clusterId,
              node: opts.node,
              taskQueue: targets.taskQueue,
              alert: {
                alertName: 'GpuXidError',
                status: 'firing',
                episodeKey: `sim:${opts.node}:${opts.gpu}:${opts.xid ?? 'fault'}:${new Date().toISOString()}`,
                source: 'fleetmedic sim inject',
                gpu: opts.gpu,
                ...(opts.xid !== undefined && { xid: opts.xid }),
              },
            },
          );
          process.stdout.write(`alert sent: remediation ${handle.workflowId}\n`);
        } finally {
          await connection.close();
        }
      },
    );
}
