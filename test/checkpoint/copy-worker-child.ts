// A control worker in its own process, for the "worker killed in the middle of a copy" test: it runs the
// checkpoint activities (only them, no workflows) with every write slowed down, so the parent can
// SIGKILL it while a copy is under way. Not a test file itself.
//
// argv: <temporal address> <task queue> <backup dir> <write delay ms> <chunk bytes>
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { createCheckpointActivities } from '../../src/activities/checkpoint.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { faultyFs } from './helpers.js';

const [address, taskQueue, backups, delayMs, chunk] = process.argv.slice(2);
if (!address || !taskQueue || !backups)
  throw new Error('usage: copy-worker-child <address> <queue> <dir> <delay> <chunk>');
Runtime.install({ logger: new DefaultLogger('ERROR') });
const connection = await NativeConnection.connect({ address });
const worker = await Worker.create({
  connection,
  taskQueue,
  activities: createCheckpointActivities({
    storage: new FilesystemStorage(backups, {
      fs: faultyFs(undefined, { writeDelayMs: Number(delayMs ?? 100) }),
    }),
    simulated: true,
    // The parent writes its checkpoints under /tmp; the test is about the copy, not the root.
    checkpointRoot: '/',
    chunkSize: Number(chunk ?? 65536),
  }),
});
process.stdout.write('ready\n');
await worker.run();
