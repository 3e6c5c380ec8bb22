/**
 * The cordon observer of `npm run bench:remediation`, in a process of its own: one watch on all
 * nodes, whose events are timed here, away from the control worker's busy event loop (in the same
 * process, a storm's workflow tasks delayed the observation by seconds, charging the benchmark's own
 * measurement to the latency). Started by bench/remediation.ts with the kubeconfig path; prints one
 * JSON line per node whose `spec.unschedulable` changed, `{ node, cordoned, at }` (`at`: Date.now()
 * when the event arrived), starting with every node's state, then `ready`; `{ restart: true }` when
 * the watch was reopened. Runs until its stdin closes.
 */
import { CoreV1Api, KubeConfig, Watch, type V1Node } from '@kubernetes/client-node';

const kubeconfig = process.argv[2];
if (!kubeconfig) {
  console.error('remediation-watch: expected the kubeconfig path as the argument');
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);

const cordoned = new Map<string, boolean>();
let resourceVersion: string | undefined;
let abort: AbortController | undefined;
let stopped = false;

function record(n: V1Node): void {
  const at = Date.now();
  const node = n.metadata?.name;
  if (!node) return;
  const now = n.spec?.unschedulable === true;
  if (cordoned.get(node) !== now) {
    cordoned.set(node, now);
    process.stdout.write(`${JSON.stringify({ node, cordoned: now, at })}\n`);
  }
  if (n.metadata?.resourceVersion) resourceVersion = n.metadata.resourceVersion;
}

async function start(): Promise<void> {
  const list = await kc.makeApiClient(CoreV1Api).listNode();
  for (const n of list.items) record(n);
  resourceVersion = list.metadata?.resourceVersion;
  await open();
}

async function open(): Promise<void> {
  abort = await new Watch(kc).watch(
    '/api/v1/nodes',
    { resourceVersion, allowWatchBookmarks: true },
    (phase, obj: V1Node) => {
      if (phase === 'ADDED' || phase === 'MODIFIED') record(obj);
      else if (phase === 'BOOKMARK' && obj.metadata?.resourceVersion)
        resourceVersion = obj.metadata.resourceVersion;
      // An ERROR event (410 Gone: the version is too old) ends the watch: the reopen re-lists.
      else if (phase === 'ERROR') resourceVersion = undefined;
    },
    () => {
      // The server closes watches after a while: reopen from the last version seen.
      if (stopped) return;
      process.stdout.write(`${JSON.stringify({ restart: true })}\n`);
      reopen().catch((err: Error) => console.error(`remediation-watch: reopening failed: ${err.message}`));
    },
  );
}

async function reopen(): Promise<void> {
  if (resourceVersion === undefined) return start();
  try {
    await open();
  } catch {
    await start();
  }
}

process.stdin.on('end', () => {
  stopped = true;
  abort?.abort();
  process.exit(0);
});
process.stdin.resume();
await start();
process.stdout.write('ready\n');
