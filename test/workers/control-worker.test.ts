import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { createControlWorkers } from '../../src/workers/control-worker.js';

describe('control worker', () => {
  it('refuses an invalid fleet budget before connecting anything, naming the field', async () => {
    await assert.rejects(
      createControlWorkers({
        // Never reached: the budget is checked first.
        connection: undefined as never,
        client: undefined as never,
        kc: undefined as never,
        clusterId: 'lab-1',
        taskQueue: 'fleetmedic',
        budgetConfig: { breakerThreshold: 10 },
      }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /breakerThreshold is 10, expected a fraction from 0 to 1/.test(err.message),
    );
  });
});
