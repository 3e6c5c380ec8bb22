import { Command } from 'commander';
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { registerOperatorCommands } from '../../src/cli/commands/operator.js';
import { OperatorError, type NodeRemediation } from '../../src/client/operator-client.js';
import type { ReapOutcome } from '../../src/drill/reaper.js';
import { FakeOperator } from './fake-operator.js';

/** What the drill reaper finds on a node, by name (none: the node's record is no drill's). */
const drillOutcomes = new Map<string, ReapOutcome>();

/** Runs `fleetmedic <args>` against `operator`; answers what it printed. */
async function fleetmedic(operator: FakeOperator, ...args: string[]): Promise<string> {
  let printed = '';
  const program = new Command('fleetmedic')
    .exitOverride()
    .configureOutput({ writeOut: (t) => (printed += t), writeErr: () => {} });
  registerOperatorCommands(program, {
    withService: (fn) => fn(operator),
    reapDrillNode: (node) => Promise.resolve(drillOutcomes.get(node)),
    out: (text) => {
      printed += text;
    },
  });
  await program.parseAsync(args, { from: 'user' });
  return printed;
}

/** The `--by` default: the login name (as operator.ts reads it). */
function login(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? '';
  }
}

const HELD: NodeRemediation = {
  workflowId: 'remediation/fmunit/gpu-node-2',
  runId: 'run-1',
  status: 'RUNNING',
  startedAt: '2025-01-01T00:00:00.000Z',
  closedAt: null,
  ageSeconds: 3725,
  phase: 'quarantined',
  outcome: null,
  actions: ['retry', 'mark-repaired', 'reject', 'release'],
  remediation: {
    clusterId: 'fmunit',
    node: 'gpu-node-2',
    phase: 'quarantined',
    class: 'reboot-node',
    reasons: ['XID 79: GPU fell off the bus'],
    alerts: 1,
    resolvedAlerts: 0,
    waitingFor: 'operator: retry, mark-repaired, reject, release',
    quarantineReason: 'drain failed (DrainRefused: a PodDisruptionBudget allows no eviction)',
    outcome: null,
    reminders: 2,
    decisions: [],
    running: null,
    actions: ['retry', 'markRepaired', 'reject', 'release'],
    holdsDrainSlot: false,
  },
};

// The operator CLI commands with a fake operator service: parsing, the identity recorded and the
// answers. The commands against the real workflow are in operator.e2e.test.ts.
describe('operator decision commands', () => {
  it('sends release, retry and retry-drain (as retry) with --by and --reason', async () => {
    const operator = new FakeOperator();
    assert.equal(
      await fleetmedic(operator, 'release', 'gpu-node-2', '--by', 'bob', '--reason', 'RMA cancelled'),
      'release accepted for gpu-node-2\n',
    );
    assert.equal(
      await fleetmedic(operator, 'retry', 'gpu-node-3', '--by', 'bob'),
      'retry accepted for gpu-node-3\n',
    );
    assert.equal(
      await fleetmedic(operator, 'retry-drain', 'gpu-node-4', '--by', 'carol', '--reason', 'PDB relaxed'),
      'retry accepted for gpu-node-4\n',
    );
    assert.deepEqual(operator.calls, [
      ['decide', 'gpu-node-2', 'release', { by: 'bob', reason: 'RMA cancelled' }],
      ['decide', 'gpu-node-3', 'retry', { by: 'bob' }],
      ['decide', 'gpu-node-4', 'retry', { by: 'carol', reason: 'PDB relaxed' }],
    ]);
  });

  it('records the login name when --by is not given, as for approve, reject and mark-repaired', async () => {
    const operator = new FakeOperator();
    for (const name of ['approve', 'reject', 'mark-repaired', 'release', 'retry', 'retry-drain']) {
      await fleetmedic(operator, name, 'gpu-node-2');
    }
    assert.deepEqual(
      operator.calls.map((c) => [c[2], c[3]]),
      ['approve', 'reject', 'mark-repaired', 'release', 'retry', 'retry'].map((d) => [d, { by: login() }]),
    );
  });

  it('fails with the refusal as the client words it (what the node accepts now), not wrapped again', async () => {
    const operator = new FakeOperator();
    const refused =
      'retry refused: node gpu-node-2 is not waiting for retry (phase quarantined; it accepts mark-repaired, release)';
    operator.fail = new OperatorError('refused', refused);
    await assert.rejects(fleetmedic(operator, 'retry-drain', 'gpu-node-2'), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.equal(err.message, refused);
      return true;
    });
    const none =
      'release refused: node gpu-node-9 has no open remediation to release (Temporal keeps none for it in cluster fmunit); ...';
    operator.fail = new OperatorError('not-found', none);
    await assert.rejects(fleetmedic(operator, 'release', 'gpu-node-9'), { message: none });
  });

  describe('release of a node a drill cordoned', () => {
    const cordon = {
      node: 'gpu-node-5',
      owner: 'drill/nightly',
      drillId: 'nightly',
      workflowId: 'drill/fmunit/nightly',
    };
    /** `fleetmedic release gpu-node-5` while the reaper finds `found` there. */
    async function release(operator: FakeOperator, found: Omit<ReapOutcome, 'cordon'>, ...args: string[]) {
      drillOutcomes.set('gpu-node-5', { cordon, ...found });
      try {
        return await fleetmedic(operator, 'release', 'gpu-node-5', ...args);
      } finally {
        drillOutcomes.clear();
      }
    }

    it('reverts it through the reaper when the drill is closed, and signals no remediation', async () => {
      const operator = new FakeOperator();
      const closed = { state: 'closed', status: 'TERMINATED' } as const;
      assert.equal(
        await release(operator, { run: closed, action: 'revert', result: 'uncordoned' }, '--by', 'bob'),
        'release gpu-node-5: node gpu-node-5 is cordoned by drill nightly; its workflow drill/fmunit/nightly ' +
          'is terminated: cordon reverted: node uncordoned and ownership record removed\n',
      );
      assert.deepEqual(operator.calls, []);
    });

    it('refuses while the drill runs, saying how to stop it, and signals no remediation', async () => {
      const operator = new FakeOperator();
      const running = { state: 'running', status: 'RUNNING' } as const;
      await assert.rejects(
        release(operator, { run: running, action: 'leave', result: 'left' }),
        (err: unknown) => {
          assert.ok(err instanceof OperatorError && err.kind === 'refused');
          assert.match(
            err.message,
            /node gpu-node-5 is cordoned by drill nightly, whose workflow drill\/fmunit\/nightly is running/,
          );
          assert.match(err.message, /temporal workflow cancel --workflow-id drill\/fmunit\/nightly/);
          assert.match(err.message, /`fleetmedic drill-cancel nightly`/);
          return true;
        },
      );
      // Only release looks at drills: retry still goes to the remediation.
      await fleetmedic(operator, 'retry', 'gpu-node-5');
      assert.deepEqual(operator.calls, [['decide', 'gpu-node-5', 'retry', { by: login() }]]);
    });

    it("fails, leaving the node, when the drill's run cannot be read", async () => {
      const unknown = { state: 'unknown', error: 'Temporal away' } as const;
      await assert.rejects(
        release(new FakeOperator(), { run: unknown, action: 'leave', result: 'left' }),
        (err: unknown) => {
          assert.ok(err instanceof OperatorError && err.kind === 'unavailable');
          assert.match(err.message, /could not be read \(Temporal away\): left as it is/);
          return true;
        },
      );
    });
  });

  it('needs a node, and lists release and retry (alias retry-drain) in the help', async () => {
    const operator = new FakeOperator();
    await assert.rejects(fleetmedic(operator, 'release'), /missing required argument 'node'/);
    let text = '';
    const program = new Command('fleetmedic').configureOutput({ writeOut: (t) => (text += t) });
    registerOperatorCommands(program, { withService: (fn) => fn(operator) });
    program.outputHelp();
    assert.match(text, /release \[options\] <node>\s+return a held node to service without a/);
    assert.match(text, /retry\|retry-drain \[options\] <node>\s+run a held node's failed step again/);
    assert.match(text, /reject \[options\] <node>\s+reject the repair: the run holds the node/);
    assert.deepEqual(operator.calls, []);
  });
});

describe('fleetmedic status <node>', () => {
  it('shows what the run accepts now, in CLI names', async () => {
    const operator = new FakeOperator();
    operator.nodes.set('gpu-node-2', HELD);
    const text = await fleetmedic(operator, 'status', 'gpu-node-2');
    assert.match(text, /^ {2}phase {8}quarantined$/m);
    assert.match(text, /^ {2}accepts {6}retry, mark-repaired, reject, release$/m);
    const json = JSON.parse(await fleetmedic(operator, 'show', 'gpu-node-2', '--json')) as NodeRemediation;
    assert.deepEqual(json.actions, ['retry', 'mark-repaired', 'reject', 'release']);
  });

  it('shows a dash when the run accepts nothing now', async () => {
    const operator = new FakeOperator();
    operator.nodes.set('gpu-node-2', {
      ...HELD,
      phase: 'draining',
      actions: [],
      remediation: { ...HELD.remediation!, phase: 'draining', actions: [] },
    });
    assert.match(await fleetmedic(operator, 'show', 'gpu-node-2'), /^ {2}accepts {6}-$/m);
  });
});
