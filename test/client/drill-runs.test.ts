import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runningDrillLines, type RunningDrill } from '../../src/client/drill-runs.js';

const T0 = Date.UTC(2026, 11, 3, 10, 0, 0);

describe('fleetmedic status: running drills', () => {
  it('one line per drill: ID, stage, age, cordoned nodes, abort reason, launcher', () => {
    const drills: RunningDrill[] = [
      {
        drillId: 'nightly-20261203t100000.000z',
        workflowId: 'drill/sim-1/nightly-20261203t100000.000z',
        startedAt: new Date(T0).toISOString(),
        stage: 'eviction',
        cordoned: ['gpu-node-2'],
        startedBy: 'drill-schedule/sim-1/nightly-2026-12-03T10:00:00Z',
      },
      {
        drillId: 'd2',
        workflowId: 'drill/sim-1/d2',
        startedAt: new Date(T0 + 60_000).toISOString(),
        stage: 'rolling-back',
        cordoned: [],
        aborted: 'the continuity watchdog fired',
      },
      {
        drillId: 'd3',
        workflowId: 'drill/sim-1/d3',
        startedAt: new Date(T0 + 200_000).toISOString(),
        stage: null,
        cordoned: [],
      },
    ];
    assert.deepEqual(runningDrillLines(drills, T0 + 205_000), [
      'drill nightly-20261203t100000.000z  eviction  3m25s  cordoned gpu-node-2  started by drill-schedule/sim-1/nightly-2026-12-03T10:00:00Z',
      'drill d2  rolling-back  2m25s  nothing cordoned  aborting: the continuity watchdog fired',
      'drill d3  stage unknown (no answer to its query)  5s  nothing cordoned',
    ]);
  });

  it('says when none runs', () => {
    assert.deepEqual(runningDrillLines([], T0), ['no running drills']);
  });
});
