import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker, type InjectedSinks } from '@temporalio/worker';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import type { PhaseEventSinks } from '../../src/contracts/remediation.js';

const dir = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

// Recorded histories of real runs (FLEETMEDIC_RECORD_HISTORIES=1 npm test -- remediation.e2e
// workflows/fleet-budget workflows/checkpoint drill/workflow.e2e) must replay against today's workflow
// code: a change that breaks determinism fails here, before it can break the runs that are open in
// production when a new worker is deployed.
describe('workflow replay', async () => {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 4, `only ${files.length} histories in ${dir}`);
  });

  it('has a backed-up, an unchanged and a rejected checkpoint backup (workflows/checkpoint.test.ts)', async () => {
    const ends: Record<string, [string, string, string | undefined]> = {
      'checkpoint-backup.json': ['checkpointBackupWorkflow', 'COMPLETED', undefined],
      'checkpoint-unchanged.json': ['checkpointBackupWorkflow', 'COMPLETED', undefined],
      'checkpoint-rejected.json': ['checkpointBackupWorkflow', 'FAILED', 'CheckpointRejected'],
    };
    for (const [file, expected] of Object.entries(ends)) {
      const history = historyFromJSON(JSON.parse(await fs.readFile(`${dir}${file}`, 'utf8')));
      const [first, last] = [history.events?.[0], history.events?.at(-1)];
      const failure = last?.workflowExecutionFailedEventAttributes?.failure?.applicationFailureInfo?.type;
      const closed = last?.workflowExecutionCompletedEventAttributes
        ? 'COMPLETED'
        : last?.workflowExecutionFailedEventAttributes
          ? 'FAILED'
          : 'OPEN';
      const type = first?.workflowExecutionStartedEventAttributes?.workflowType?.name;
      assert.deepEqual([type, closed, failure ?? undefined], expected, file);
    }
  });

  const bundle = await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent });
  for (const file of files) {
    it(`replays ${file}`, async () => {
      const history = historyFromJSON(JSON.parse(await fs.readFile(`${dir}${file}`, 'utf8')));
      await Worker.runReplayHistory({ workflowBundle: bundle, sinks: noSinks }, history, file);
    });
  }
});

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
// The control worker's sinks, doing nothing (a replay calls none of them; unregistered, each call is logged).
const noSinks: InjectedSinks<PhaseEventSinks> = { phaseEvents: { record: { fn() {} } } };
