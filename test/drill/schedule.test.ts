import { Command } from 'commander';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  drillScheduleOptions,
  formatEvery,
  parseEvery,
  registerDrillScheduleCommands,
  scheduledDrill,
  scheduleLines,
} from '../../src/cli/commands/drill-schedule.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import { DRILL_ID_PATTERN } from '../../src/contracts/drill.js';
import {
  DRILL_SCHEDULE_NAME_PATTERN,
  drillScheduleId,
  drillScheduleName,
  scheduledDrillId,
} from '../../src/contracts/drill-schedule.js';
import { ConfigError } from '../../src/errors.js';

const T0 = Date.UTC(2026, 11, 3, 10, 0, 0, 0);

describe('scheduledDrillId: the drill ID of a scheduled run', () => {
  it('is the schedule name and the start time to the millisecond', () => {
    assert.equal(scheduledDrillId(drillScheduleId('sim-1', 'nightly'), T0), 'nightly-20261203t100000.000z');
    assert.equal(scheduledDrillId('nightly', T0 + 123), 'nightly-20261203t100000.123z');
  });

  const names = fc.oneof(fc.stringMatching(DRILL_SCHEDULE_NAME_PATTERN), fc.string({ maxLength: 80 }));
  const times = fc.integer({ min: -8.64e15, max: 8.64e15 });

  it('is always a valid drill ID (a label value and a file name), whatever the schedule ID and time', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), names, times, (cluster, name, t) => {
        const id = scheduledDrillId(drillScheduleId(cluster, name), t);
        assert.match(id, DRILL_ID_PATTERN);
      }),
      { numRuns: 2_000 },
    );
  });

  it('differs for different start times of one schedule', () => {
    fc.assert(
      fc.property(names, times, times, (name, a, b) => {
        fc.pre(a !== b);
        const id = drillScheduleId('c', name);
        assert.notEqual(scheduledDrillId(id, a), scheduledDrillId(id, b));
      }),
      { numRuns: 2_000 },
    );
  });

  it('keeps a valid schedule name whole', () => {
    fc.assert(
      fc.property(fc.stringMatching(DRILL_SCHEDULE_NAME_PATTERN), times, (name, t) => {
        assert.ok(scheduledDrillId(drillScheduleId('c', name), t).startsWith(`${name}-`));
      }),
    );
  });
});

describe('drill schedule IDs', () => {
  it('name a schedule per cluster, and read back only their own cluster', () => {
    const id = drillScheduleId('sim-1', 'nightly');
    assert.equal(id, 'drill-schedule/sim-1/nightly');
    assert.equal(drillScheduleName('sim-1', id), 'nightly');
    assert.equal(drillScheduleName('sim-2', id), undefined);
    assert.equal(drillScheduleName('sim-1', 'other-schedule'), undefined);
  });
});

describe('--every', () => {
  const table: [string, number][] = [
    ['5m', 300_000],
    ['30m', 1_800_000],
    ['6h', 21_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1d12h', 129_600_000],
    ['600s', 600_000],
  ];
  for (const [text, ms] of table) {
    it(`${text} is ${ms} ms and formats back`, () => {
      assert.equal(parseEvery(text), ms);
      assert.equal(parseEvery(formatEvery(ms)), ms);
    });
  }

  it('refuses what is not a duration, naming the flag and the value', () => {
    for (const bad of ['', 'daily', '1w', '10', '30m1h', '-5m', '0m']) {
      assert.throws(
        () => parseEvery(bad),
        (err: unknown) =>
          err instanceof Error &&
          err.message ===
            `--every must be a duration such as 30m, 6h, 1d or 1h30m, got ${JSON.stringify(bad)}`,
      );
    }
  });

  it('refuses an interval under 5 minutes or over a year', () => {
    assert.throws(() => parseEvery('4m59s'), /--every 4m59s is outside 5m\.\.366d/);
    assert.throws(() => parseEvery('367d'), /--every 367d is outside 5m\.\.366d/);
  });
});

describe('drillScheduleOptions', () => {
  it('starts the launcher on the queue, never two at once, no late catch-up, pauses on failure', () => {
    const drill = {
      clusterId: 'sim-1',
      namespace: 'default',
      deployment: 'llama',
      targetUrl: 'http://gw:8080',
    };
    const o = drillScheduleOptions({
      clusterId: 'sim-1',
      name: 'nightly',
      everyMs: 3_600_000,
      taskQueue: 'q',
      drill,
    });
    assert.equal(o.scheduleId, 'drill-schedule/sim-1/nightly');
    assert.deepEqual(o.spec.intervals, [{ every: 3_600_000 }]);
    assert.equal(o.action.workflowType, 'scheduledDrillWorkflow');
    assert.equal(o.action.taskQueue, 'q');
    assert.deepEqual(o.action.args, [{ scheduleId: 'drill-schedule/sim-1/nightly', drill }]);
    assert.deepEqual(o.policies, { overlap: 'SKIP', catchupWindow: '5m', pauseOnFailure: true });
  });
});

describe('scheduledDrill: the flags as the drill input of every run', () => {
  it('maps each flag to its DrillInput field, and leaves out what was not given', () => {
    const base = { every: 86_400_000, namespace: 'inference', deployment: 'llm', targetUrl: 'http://gw' };
    assert.deepEqual(scheduledDrill(base, 'prod-west', false), {
      clusterId: 'prod-west',
      namespace: 'inference',
      deployment: 'llm',
      targetUrl: 'http://gw',
      drainNode: false,
    });
    assert.deepEqual(
      scheduledDrill(
        {
          ...base,
          gatewayDeployment: 'gw',
          standin: true,
          replicas: 2,
          rate: 7,
          deadline: 600.5,
          abortBelow: 0,
          evictionSlack: 15,
          deleteEmptydirData: true,
        },
        'sim-1',
        true,
      ),
      {
        clusterId: 'sim-1',
        namespace: 'inference',
        deployment: 'llm',
        targetUrl: 'http://gw',
        gateway: { deployment: 'gw' },
        standin: { replicas: 2 },
        deleteEmptyDirData: true,
        drainNode: true,
        probe: { rate: 7 },
        deadlineSeconds: 601,
        watchdog: { abortBelow: 0 },
        thresholds: { evictionRecoveryOverRestoreMs: 15_000 },
      },
    );
  });
});

describe('drill-schedule list', () => {
  it('prints name, interval, next run and the last run; a paused one says so and why', () => {
    assert.deepEqual(
      scheduleLines([
        {
          name: 'hourly',
          everyMs: 3_600_000,
          paused: false,
          note: undefined,
          nextRun: new Date(T0),
          lastRun: 'hourly-20261203t090000.000z PASS',
        },
        {
          name: 'nightly',
          everyMs: 86_400_000,
          paused: true,
          note: 'paused on failure',
          nextRun: undefined,
          lastRun: undefined,
        },
      ]),
      [
        'hourly  every 1h  next 2026-12-03T10:00:00.000Z  last: hourly-20261203t090000.000z PASS',
        'nightly  every 1d  paused  last: none yet',
        '  (paused on failure)',
      ],
    );
    assert.deepEqual(scheduleLines([]), ['no drill schedules']);
  });
});

describe('drill-schedule and drill-cancel flags are refused before anything connects', () => {
  // No stack and no Temporal: each refusal below must come from the flags alone.
  async function run(...args: string[]): Promise<unknown> {
    const program = new Command().exitOverride();
    program.configureOutput({ writeErr() {}, writeOut() {} });
    addGlobalFlags(program);
    registerDrillScheduleCommands(program, { stdout() {}, stderr() {} });
    return program.parseAsync(['--state-dir', '/nonexistent/fleetmedic-test', ...args], { from: 'user' });
  }
  const create = (...args: string[]) => run('drill-schedule', 'create', 'nightly', ...args);
  const url = ['--target-url', 'http://127.0.0.1:1'];

  it('a schedule without --target-url is refused, saying why a schedule needs one', async () => {
    await assert.rejects(
      create('--every', '1d'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /a scheduled drill needs --target-url <url>/.test(err.message) &&
        /live only as long as that command/.test(err.message),
    );
  });

  it('--every is required and checked', async () => {
    await assert.rejects(create(...url), /required option '--every <duration>' not specified/);
    await assert.rejects(create(...url, '--every', '1m'), /--every 1m is outside 5m\.\.366d/);
  });

  it('names the bad flag and value', async () => {
    const cases: [string[], RegExp][] = [
      [['--target-url', 'gw:8080'], /--target-url must be an http\(s\) URL, got "gw:8080"/],
      [['--target-url', 'ftp://gw'], /--target-url must be an http\(s\) URL, got "ftp:\/\/gw"/],
      [[...url, '--rate', '0'], /--rate must be a positive number, got "0"/],
      [[...url, '--deadline', 'soon'], /--deadline must be a positive number, got "soon"/],
      [[...url, '--abort-below', '2'], /--abort-below must be a number from 0 to 1, got "2"/],
    ];
    for (const [flags, message] of cases) await assert.rejects(create('--every', '1d', ...flags), message);
  });

  it('a schedule name that cannot begin a drill ID is refused', async () => {
    for (const bad of ['Nightly', 'night_ly', 'x-', 'a'.repeat(41)]) {
      await assert.rejects(
        run('drill-schedule', 'create', bad, '--every', '1d', ...url),
        (err: unknown) =>
          err instanceof ConfigError && err.message.startsWith(`drill schedule name "${bad}"`),
      );
      await assert.rejects(run('drill-schedule', 'delete', bad), ConfigError);
    }
  });

  it('drill-cancel refuses an ID that is not a drill ID, and a bad --wait', async () => {
    await assert.rejects(
      run('drill-cancel', 'not/valid'),
      (err: unknown) => err instanceof ConfigError && /drill ID "not\/valid"/.test(err.message),
    );
    await assert.rejects(
      run('drill-cancel', 'd1', '--wait', '-1'),
      /--wait must be a positive number, got "-1"/,
    );
  });
});
