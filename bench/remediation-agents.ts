/**
 * The node agents of `npm run bench:remediation`, in a process of their own: in production each GPU
 * node runs its own agent, so hosting 1,500 agent Workers in the control worker's process would charge
 * their event-loop work to the control worker, and the benchmark could not report the agents' memory
 * alone. Started by bench/remediation.ts with one JSON argument (see `AgentHostArgs`); prints
 * `ready <workers>` once every Worker runs, then runs until SIGTERM or its stdin closes.
 */
import {
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
} from '@temporalio/worker';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { FileGpuStateStore } from '../src/sim/gpu-state.js';
import { simulatedRunner } from '../src/sim/sim-runner.js';
import { simNodeName } from '../src/stack/sim-nodes.js';
import { createNodeAgentWorkers } from '../src/workers/node-agent-host.js';

const AgentHostArgs = z.object({
  address: z.string().regex(/^127\.0\.0\.1:\d+$/, 'a Temporal frontend on 127.0.0.1'),
  namespace: z.string().min(1),
  clusterId: z.string().min(1),
  /** Agents for simulated nodes gpu-node-1 .. gpu-node-N. */
  nodes: z.number().int().min(1),
  /** FileGpuStateStore directory the benchmark writes the faults to. */
  gpuDir: z.string().min(1),
  /** 'sdk': createNodeAgentWorkers as it is; a number: that many activity pollers per agent. */
  agentPolls: z.union([z.literal('sdk'), z.number().int().min(1).max(10)]),
  /** The agents start one after another over this many ms (0: all at once). */
  spreadMs: z.number().int().min(0).max(600_000),
});

const parsed = AgentHostArgs.safeParse(JSON.parse(process.argv[2] ?? 'null'));
if (!parsed.success) {
  console.error(`remediation-agents: invalid arguments\n${z.prettifyError(parsed.error)}`);
  process.exit(2);
}
const args = parsed.data;

// Warnings are expected by the thousand (every agent says it polls no workflow tasks): errors only.
Runtime.install({
  logger: new DefaultLogger('ERROR', (entry) => process.stderr.write(`agents: ${entry.message}\n`)),
  telemetryOptions: {
    logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} },
  },
  shutdownSignals: [],
});

const connection = await NativeConnection.connect({ address: args.address });
const gpus = new FileGpuStateStore(args.gpuDir);
// The proposed fix of node-agent-host.ts, tried from here: the same createNodeAgentWorkers, each
// Worker.create call given an activityTaskPollerBehavior (Worker.create is restored right after).
const create = Worker.create.bind(Worker);
if (args.agentPolls !== 'sdk') {
  const maximum = args.agentPolls;
  Worker.create = (options) =>
    create({ ...options, activityTaskPollerBehavior: { type: 'simple-maximum', maximum } });
}
const workers = await createNodeAgentWorkers({
  connection,
  clusterId: args.clusterId,
  namespace: args.namespace,
  nodes: Array.from({ length: args.nodes }, (_, i) => simNodeName(i)),
  runnerFor: (n) => simulatedRunner(gpus, n),
}).finally(() => {
  Worker.create = create;
});
// Agents on real nodes start at different times, so their long polls (each renewed about once a
// minute while idle) are spread out. Started together, all 1,500 would renew theirs in the same
// second, minute after minute: a burst of work for the Temporal server that a storm round meets or
// not, by chance.
let stopping = false;
const running = Promise.all(
  workers.map(async (w, i) => {
    await sleep((i * args.spreadMs) / workers.length);
    if (!stopping) await w.run();
  }),
);
await sleep(args.spreadMs);

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  await Promise.race([running.catch(() => {}), new Promise((r) => setTimeout(r, 30_000))]);
  await connection.close().catch(() => {});
  process.exit(0);
}
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
// The benchmark holds our stdin: if it dies, so do we.
process.stdin.on('close', () => void stop());
process.stdin.resume();
process.stdout.write(`ready ${workers.length}\n`);
