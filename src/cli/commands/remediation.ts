import { Client, Connection } from '@temporalio/client';
import { loadVerifiers } from '../../checkpoint/verifiers.js';
import { connectionOptions } from '../../client/temporal-connection.js';
import { NativeConnection } from '@temporalio/worker';
import { InvalidArgumentError, Option, type Command } from 'commander';
import os from 'node:os';
import path from 'node:path';
import { createCheckpointActivities } from '../../activities/checkpoint.js';
import { FilesystemStorage } from '../../checkpoint/storage.js';
import { startOrJoinRemediation } from '../../client/remediation-client.js';
import type { AlertSignal } from '../../domain/remediation-plan.js';
import { ConfigError, FleetmedicError } from '../../errors.js';
import { SIMULATED_LABEL } from '../../k8s/labels.js';
import { simulatedXidNotification } from '../../sim/alertmanager-alert.js';
import { FileGpuStateStore, simGpuStateDir, withFault } from '../../sim/gpu-state.js';
import { simulatedRunner } from '../../sim/sim-runner.js';
import { simulatedBoot } from '../../k8s/boot-id.js';
import { assertSimulatedCluster, assertSimulatedNode, isSimulatedCluster } from '../../stack/sim-cluster.js';
import { assertLoopbackUrl } from '../../k8s/loopback.js';
import { createControlWorkers, prebuiltWorkflowBundle } from '../../workers/control-worker.js';
import { budgetTaskQueue } from '../../contracts/ids.js';
import { createNodeAgentWorkers, runWorkers } from '../../workers/node-agent-host.js';
import { installRuntime } from '../../workers/runtime.js';
import {
  parsePortFlag,
  workerObservability,
  type WorkerObservabilityFlags,
} from '../../observability/setup.js';
import { readWebhookEndpoint } from '../../webhook/endpoint-record.js';
import { ROUTES, type WebhookAnswer } from '../../webhook/server.js';
import { configFrom, resolveTargets, targetKubeConfig } from '../context.js';
import { CoreV1Api } from '@kubernetes/client-node';
import { onStopSignal } from '../stop-signal.js';

function nonNegativeInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value))
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

async function client(program: Command) {
  const targets = await resolveTargets(configFrom(program));
  const connection = await Connection.connect(connectionOptions(targets.temporal));
  return { targets, connection, client: new Client({ connection, namespace: targets.namespace }) };
}

function untilSignal(): AbortSignal {
  const controller = new AbortController();
  onStopSignal(() => controller.abort());
  return controller.signal;
}

/** Operator and worker commands of the GPU remediation. */
export function registerRemediationCommands(program: Command): void {
  program
    .command('worker')
    .description('run the control worker (workflows + cluster activities) until interrupted')
    .option(
      '--metrics-port <port>',
      'serve Prometheus /metrics on this port (0 = any free port; default FLEETMEDIC_METRICS_PORT, else off)',
      parsePortFlag,
    )
    .option('--notify-config <file>', 'notification sinks file (default FLEETMEDIC_NOTIFY_CONFIG)')
    .action(async (flags: WorkerObservabilityFlags) => {
      const config = configFrom(program);
      installRuntime(config.logLevel);
      const workflowBundle = config.workflowBundle
        ? await prebuiltWorkflowBundle(config.workflowBundle)
        : undefined;
      const targets = await resolveTargets(config);
      const connection = await NativeConnection.connect(connectionOptions(targets.temporal));
      const clientConnection = await Connection.connect(connectionOptions(targets.temporal));
      const client = new Client({ connection: clientConnection, namespace: targets.namespace });
      const kc = targetKubeConfig(targets);
      // From the cluster itself: a simulation may only send traffic to loopback addresses.
      const simulated = await isSimulatedCluster(kc);
      const observability = await workerObservability({ config, flags, kc, client, simulated, ...targets });
      const workers = await createControlWorkers({
        connection,
        client,
        kc,
        clusterId: targets.clusterId,
        taskQueue: targets.taskQueue,
        namespace: targets.namespace,
        observability,
        workflowBundle,
        gpuDaemonSetSelectors: config.gpuDaemonsetSelectors,
        settingsNamespace: config.settingsNamespace,
        drillDir: path.join(config.stateDir, 'drills'),
        drillReaperIntervalMs: config.drillReaperIntervalSeconds * 1000,
        extraActivities: createCheckpointActivities({
          storage: new FilesystemStorage(config.backupDir ?? path.join(config.stateDir, 'checkpoints')),
          simulated,
          checkpointRoot: config.checkpointRoot,
          ...(config.checkpointVerifiers !== undefined && {
            verifiers: await loadVerifiers(config.checkpointVerifiers),
          }),
        }),
      });
      process.stderr.write(
        `control worker for cluster ${targets.clusterId} on task queue ${targets.taskQueue} ` +
          `(fleet budget on ${budgetTaskQueue(targets.taskQueue)})` +
          `; workflow bundle ${workflowBundle ? `prebuilt ${workflowBundle.codePath}` : 'built at start'}` +
          `; GPU DaemonSets checked at release: ${config.gpuDaemonsetSelectors.join(' ; ')}` +
          `; drill reaper every ${config.drillReaperIntervalSeconds} s` +
          `${observability.server ? `; metrics on ${observability.server.url}/metrics` : ''}` +
          `; notification sinks: ${observability.notifier.sinkNames.join(', ') || 'none (logged only)'}\n`,
      );
      await runWorkers(workers, untilSignal());
      await observability.close();
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
      const kc = targetKubeConfig(targets);
      await assertSimulatedCluster(kc);
      const nodes = (await kc.makeApiClient(CoreV1Api).listNode({ labelSelector: `${SIMULATED_LABEL}=true` }))
        .items;
      for (const n of nodes) assertSimulatedNode(n);
      const store = new FileGpuStateStore(simGpuStateDir(config.stateDir, targets.clusterId));
      const boot = simulatedBoot(kc);
      const connection = await NativeConnection.connect(connectionOptions(targets.temporal));
      const workers = await createNodeAgentWorkers({
        connection,
        clusterId: targets.clusterId,
        namespace: targets.namespace,
        nodes: nodes.map((n) => n.metadata!.name!),
        runnerFor: (node) => simulatedRunner(store, node, boot),
        readBootId: boot.read,
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

  // approve / reject / mark-repaired / release / retry and `show <node>` live with the operator commands
  // (operator.ts).

  const sim = program
    .command('sim')
    .description('simulated cluster tools (refused on clusters without the simulation marker)');
  sim
    .command('inject')
    .description(
      'set a GPU fault on a simulated node and POST the Alertmanager notification a real pipeline ' +
        'would send for it to the webhook',
    )
    .requiredOption('--node <name>', 'simulated node')
    .option('--xid <n>', 'XID to raise', nonNegativeInt('--xid'))
    .option('--gpu <index>', 'GPU index', nonNegativeInt('--gpu'), 0)
    .option('--remapped-rows-failure', 'the GPU failed a row remap (hardware)')
    .option('--processes <n>', 'processes holding the GPU', nonNegativeInt('--processes'))
    .addOption(
      new Option(
        '--webhook-url <url>',
        'the webhook (default: the one `fleetmedic webhook serve` recorded in the state directory)',
      ).env('FLEETMEDIC_WEBHOOK_URL'),
    )
    .addOption(
      new Option('--token <token>', "bearer token for the webhook's alert routes").env(
        'FLEETMEDIC_WEBHOOK_TOKEN',
      ),
    )
    .option('--no-alert', 'only set the fault')
    .action(
      async (opts: {
        node: string;
        xid?: number;
        gpu: number;
        remappedRowsFailure?: boolean;
        processes?: number;
        webhookUrl?: string;
        token?: string;
        alert: boolean;
      }) => {
        const config = configFrom(program);
        const targets = await resolveTargets(config);
        const dcgmCode = opts.remappedRowsFailure ? 'DCGM_FR_ROW_REMAP_FAILURE' : undefined;
        if (opts.alert && opts.xid === undefined && dcgmCode === undefined) {
          throw new InvalidArgumentError(
            'nothing to alert on: give --xid or --remapped-rows-failure (or --no-alert to only set the fault)',
          );
        }
        // Where the alert goes is settled before the fault is set, so a missing webhook leaves no
        // fault behind that nothing was told about.
        const url = opts.alert
          ? await alertmanagerRoute(opts.webhookUrl, config.stateDir, targets.clusterId)
          : undefined;
        // Fault injection exists only on simulated clusters, which send nothing beyond loopback.
        if (url !== undefined) assertLoopbackUrl(url, 'the webhook');
        const kc = targetKubeConfig(targets);
        await assertSimulatedCluster(kc);
        assertSimulatedNode(await kc.makeApiClient(CoreV1Api).readNode({ name: opts.node }));
        const store = new FileGpuStateStore(simGpuStateDir(config.stateDir, targets.clusterId));
        const state = withFault(await store.get(opts.node), {
          gpu: opts.gpu,
          ...(opts.xid !== undefined && { xid: opts.xid }),
          ...(opts.remappedRowsFailure && { remappedRowsFailure: true }),
          ...(opts.processes !== undefined && { processes: opts.processes }),
        });
        await store.set(opts.node, state);
        process.stdout.write(`fault set on ${opts.node} GPU ${opts.gpu}\n`);
        if (!url) return;
        const body = simulatedXidNotification({
          node: opts.node,
          gpu: state.gpus.find((g) => g.index === opts.gpu)!,
          ...(opts.xid !== undefined && { xid: opts.xid }),
          ...(dcgmCode !== undefined && { dcgmCode }),
          startsAt: new Date(),
        });
        const answer = await postAlert(url, body, opts.token);
        process.stdout.write(
          `alert ${body.alerts[0]!.labels.alertname} (fingerprint ${body.alerts[0]!.fingerprint}) sent to ${url}: ` +
            `HTTP ${answer.status}\n`,
        );
        for (const a of answer.body.alerts ?? []) {
          process.stdout.write(
            `  ${a.node ?? '?'}: ${a.result}${a.workflowId ? ` ${a.workflowId}` : ''}${a.runId ? ` (run ${a.runId})` : ''}` +
              `${a.reason ? `: ${a.reason}` : ''}\n`,
          );
        }
        process.stdout.write(`workflows: ${(answer.body.workflowIds ?? []).join(', ') || 'none'}\n`);
      },
    );
}

/**
 * The webhook's Alertmanager route: `--webhook-url` (a bare address gets the route appended), else
 * the webhook `fleetmedic webhook serve` recorded in the state directory, else a clear error.
 */
async function alertmanagerRoute(given: string | undefined, stateDir: string, clusterId: string) {
  let base = given;
  if (base === undefined) {
    const recorded = await readWebhookEndpoint(stateDir);
    if (!recorded) {
      throw new ConfigError(
        `no webhook to send the alert to: none runs for state directory ${stateDir}. Start one with ` +
          '`fleetmedic webhook serve --rules <rules.yaml> [--token-file <file>]`, or pass --webhook-url ' +
          '(or FLEETMEDIC_WEBHOOK_URL); --no-alert only sets the fault',
      );
    }
    if (recorded.clusterId !== clusterId) {
      throw new ConfigError(
        `the webhook at ${recorded.url} serves cluster ${recorded.clusterId}, not ${clusterId}: pass --webhook-url`,
      );
    }
    base = recorded.url;
  }
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new InvalidArgumentError(`--webhook-url must be an http(s) URL, got ${JSON.stringify(base)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`--webhook-url must be an http(s) URL, got ${JSON.stringify(base)}`);
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = ROUTES.alertmanager;
  return url.toString();
}

/** POSTs the notification as Alertmanager does; anything but a 2xx answer is an error saying why. */
async function postAlert(url: string, body: unknown, token: string | undefined) {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Alertmanager/0.28.1 (fleetmedic sim inject)',
        ...(token !== undefined && { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new FleetmedicError(
      'WEBHOOK_UNREACHABLE',
      `cannot POST the alert to ${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
      { permanent: false },
    );
  }
  const text = await res.text();
  let parsed: Partial<WebhookAnswer> & { error?: string } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // not JSON: reported as text below
  }
  if (!res.ok) {
    const hint =
      res.status === 401
        ? " (pass the webhook's bearer token with --token or FLEETMEDIC_WEBHOOK_TOKEN)"
        : res.status === 503
          ? ' (the webhook could not reach Temporal or Kubernetes; the fault stays set, retry the alert)'
          : '';
    throw new FleetmedicError(
      'WEBHOOK_REFUSED',
      `the webhook at ${url} answered HTTP ${res.status}: ${parsed.error ?? text.slice(0, 500)}${hint}`,
    );
  }
  return { status: res.status, body: parsed };
}
