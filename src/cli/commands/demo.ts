import { CoreV1Api } from '@kubernetes/client-node';
import { connectionOptions } from '../../client/temporal-connection.js';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrJoinRemediation } from '../../client/remediation-client.js';
import { SIMULATED_LABEL } from '../../k8s/labels.js';
import { FileGpuStateStore, healthyGpuState, simGpuStateDir, withFault } from '../../sim/gpu-state.js';
import { simulatedRunner } from '../../sim/sim-runner.js';
import { simulatedBoot } from '../../k8s/boot-id.js';
import { assertSimulatedCluster } from '../../stack/sim-cluster.js';
import { readStackState } from '../../stack/state.js';
import { createControlWorkers, endFleetBudgetServedBy } from '../../workers/control-worker.js';
import { createNodeAgentWorkers } from '../../workers/node-agent-host.js';
import { installRuntime } from '../../workers/runtime.js';
import { ConfigError } from '../../errors.js';
import { demoNodes, endEarlierDemoRuns, forgetDemoHistory } from '../../sim/demo-nodes.js';
import { Notifier } from '../../notify/notifier.js';
import { createControlMetrics } from '../../observability/metrics.js';
import { commandLog } from '../command-log.js';
import { approveUpdate, statusQuery } from '../../contracts/remediation.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';

/** How long the demo follows one remediation before it says where it stopped. */
const DEMO_STEP_DEADLINE_MS = 5 * 60_000;

/**
 * `fleetmedic demo`: on the embedded stack, runs the control worker and the simulated node agents in
 * this process, injects two GPU faults and follows both remediations in the terminal: XID 48 (ECC,
 * reset automatically) and XID 79 (fell off the bus: quarantined, drained, waits for an operator,
 * approved by the demo). Every step is visible in the Temporal UI too.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('inject two GPU faults on the embedded stack and follow their remediations')
    .option('--verbose', "the workers' logs on stderr instead of <state dir>/logs/demo.log")
    .action(async (flags: { verbose?: boolean }) => {
      const config = configFrom(program);
      const log = commandLog(config.stateDir, 'demo', flags.verbose === true);
      installRuntime(
        config.logLevel === 'info' ? 'warn' : config.logLevel,
        log.file ? (entry) => log.sdk(entry) : undefined,
      );
      const targets = await resolveTargets(config);
      const state = await readStackState(config.stateDir);
      const kc = targetKubeConfig(targets);
      await assertSimulatedCluster(kc);
      const nodes = (
        await kc.makeApiClient(CoreV1Api).listNode({ labelSelector: `${SIMULATED_LABEL}=true` })
      ).items.map((n) => n.metadata!.name!);
      if (nodes.length < 3)
        throw new ConfigError('the demo needs at least 3 simulated nodes (fleetmedic up --nodes 3)');
      const store = new FileGpuStateStore(simGpuStateDir(config.stateDir, targets.clusterId));
      const connection = await NativeConnection.connect(connectionOptions(targets.temporal));
      const clientConnection = await Connection.connect(connectionOptions(targets.temporal));
      const client = new Client({ connection: clientConnection, namespace: targets.namespace });
      const taskQueue = `${targets.taskQueue}-demo`;
      const workers = [
        ...(await createControlWorkers({
          connection,
          client,
          kc,
          clusterId: targets.clusterId,
          taskQueue,
          namespace: targets.namespace,
          observability: {
            notifier: new Notifier({ sinks: [], log: (entry) => log.write(entry) }),
            metrics: createControlMetrics(),
          },
        })),
        ...(await createNodeAgentWorkers({
          connection,
          clusterId: targets.clusterId,
          namespace: targets.namespace,
          nodes,
          runnerFor: (node) => simulatedRunner(store, node, simulatedBoot(kc)),
          readBootId: simulatedBoot(kc).read,
        })),
      ];
      const out = (line: string) => process.stdout.write(`${line}\n`);
      // Before this demo's workers poll the demo's task queue, where those runs would wake up.
      for (const node of await endEarlierDemoRuns(kc, client, taskQueue)) {
        out(`${node}: ended the remediation an earlier demo left open, and returned the node to service`);
      }
      const running = Promise.all(workers.map((w) => w.run()));
      try {
        // Nodes an operator left cordoned or under a remediation of their own are not taken over.
        const free = await demoNodes(kc, client, targets.clusterId, nodes);
        if (free.length < 2) {
          throw new ConfigError(
            `the demo needs 2 simulated nodes that are in service without an open remediation; free: ` +
              `${free.join(', ') || 'none'} (\`fleetmedic list\` shows the open ones; \`fleetmedic down --purge\` ` +
              'and `fleetmedic up` start afresh)',
          );
        }
        const faults = [
          { node: free[0]!, xid: 48, gpu: 2, what: 'XID 48 (double-bit ECC): reset automatically' },
          { node: free[1]!, xid: 79, gpu: 5, what: 'XID 79 (fell off the bus): needs an operator' },
        ];
        for (const f of faults) {
          if (await forgetDemoHistory(kc, f.node)) {
            out(
              `${f.node}: forgot the remediations of earlier demo runs (else: twice in 7 days -> replace hardware)`,
            );
          }
        }
        if (log.file) out(`worker logs: ${log.file} (--verbose shows them here)`);
        if (state)
          out(
            `follow along in the Temporal UI: ${state.temporal.uiUrl}/namespaces/${targets.namespace}/workflows`,
          );
        // One fault at a time: two failing nodes of a 4-node fleet would be 50% of it, and the fleet
        // budget (rightly) refuses to drain below its minimum healthy fraction.
        for (const f of faults) {
          await store.set(f.node, withFault(healthyGpuState(f.node), { gpu: f.gpu, xid: f.xid }));
          const handle = await startOrJoinRemediation(client, {
            clusterId: targets.clusterId,
            node: f.node,
            taskQueue,
            alert: {
              alertName: 'GpuXidError',
              status: 'firing',
              episodeKey: `demo:${f.node}:${Date.now()}`,
              xid: f.xid,
              gpu: f.gpu,
              source: 'fleetmedic demo',
            },
            policy: { diagLevel: 1, approvalReminderMs: 60_000 },
          });
          out(`injected on ${f.node} GPU ${f.gpu}: ${f.what}`);
          let last = '';
          let finished = false;
          const deadline = Date.now() + DEMO_STEP_DEADLINE_MS;
          while (Date.now() < deadline) {
            const s = await handle.query(statusQuery);
            const line = `${s.phase}${s.class ? ` (${s.class})` : ''}${s.waitingFor ? `: waiting for ${s.waitingFor}` : ''}`;
            if (line !== last) out(`  ${f.node}: ${line}`);
            last = line;
            if (s.phase === 'done') {
              finished = true;
              break;
            }
            // The demo approves only the repairs it injected faults for; anything else is an operator's.
            if (s.phase === 'awaiting-approval' && (s.class === 'reboot-node' || s.class === 'reset-gpu')) {
              out(
                `  the demo approves as "demo" (an operator runs: fleetmedic approve ${f.node} --by <you>)`,
              );
              await handle.executeUpdate(approveUpdate, { args: [{ by: 'demo', reason: 'demo run' }] });
            } else if (s.phase === 'awaiting-approval' || s.phase === 'quarantined') {
              break;
            }
            await sleep(250);
          }
          if (!finished) {
            out(
              `${f.node}: the demo stops here: the remediation waits (${last}); see \`fleetmedic show ${f.node}\` ` +
                'and the Temporal UI',
            );
            process.exitCode = 1;
            break;
          }
          const r = await handle.result();
          out(`${r.node}: ${r.outcome ?? 'unfinished'}; ${r.reasons.join('; ')}`);
        }
      } finally {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await running;
        // Its budget would wait on this process's queue for good: a later drill's drain with it.
        await endFleetBudgetServedBy({
          client,
          clusterId: targets.clusterId,
          taskQueue,
          by: 'fleetmedic demo',
        }).catch(() => undefined);
        await clientConnection.close();
        await connection.close();
      }
    });
}
