import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker, type InjectedSinks } from '@temporalio/worker';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import type { PhaseEventSinks } from '../../src/contracts/remediation.js';

const dir = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

// Recorded histories of real runs (FLEETMEDIC_RECORD_HISTORIES=1 npm test -- remediation.e2e) must
// replay against today's workflow code: a change that breaks determinism fails here, before it can
// break the remediations that are running in production when a new worker is deployed.
describe('workflow replay', async () => {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 4, `only ${files.length} histories in ${dir}`);
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
