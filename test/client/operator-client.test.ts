import type { Client } from '@temporalio/client';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DECISION_ALIASES,
  DECISIONS,
  OperatorClient,
  OperatorError,
  REMEDIATION_PHASES,
  type DecisionAlias,
  type DecisionName,
} from '../../src/client/operator-client.js';
import type { RemediationStatus } from '../../src/contracts/remediation.js';
import { FailureType, FleetmedicError } from '../../src/errors.js';

const CLUSTER = 'fmunit';

interface Run {
  readonly runId: string;
  readonly status: 'RUNNING' | 'COMPLETED' | 'TERMINATED';
  readonly outcome?: string;
  readonly remediation: RemediationStatus;
}

/**
 * The part of a Temporal client the operator client uses, over a table of runs by workflow ID.
 * `update` decides how an update is answered; every update sent is recorded.
 */
function fakeTemporal(runs: Map<string, Run>, update: (name: string) => Promise<string>) {
  const updates: [string, string, unknown][] = [];
  const notFound = (workflowId: string) => new WorkflowNotFoundError('not found', workflowId, undefined);
  const handle = (workflowId: string) => ({
    executeUpdate(def: { name: string }, options: { args: unknown[] }) {
      updates.push([workflowId, def.name, options.args[0]]);
      return update(def.name);
    },
    describe() {
      const run = runs.get(workflowId);
      if (!run) return Promise.reject(notFound(workflowId));
      const attrs: Record<string, string | undefined> = {
        FleetmedicPhase: run.remediation.phase,
        FleetmedicOutcome: run.outcome,
      };
      return Promise.resolve({
        workflowId,
        runId: run.runId,
        status: { name: run.status },
        startTime: new Date('2025-01-01T00:00:00Z'),
        closeTime: run.status === 'RUNNING' ? undefined : new Date('2025-01-01T01:00:00Z'),
        typedSearchAttributes: { get: (key: { name: string }) => attrs[key.name] },
      });
    },
    query() {
      const run = runs.get(workflowId);
      return run ? Promise.resolve(run.remediation) : Promise.reject(notFound(workflowId));
    },
    result() {
      const run = runs.get(workflowId);
      return run ? Promise.resolve(run.remediation) : Promise.reject(notFound(workflowId));
    },
  });
  const client = {
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
    workflow: { getHandle: handle },
  } as unknown as Client;
  return {
    updates,
    operator: new OperatorClient(client, { clusterId: CLUSTER, taskQueue: 'fleetmedic', clock: () => 0 }),
  };
}

function status(overrides: Partial<RemediationStatus> = {}): RemediationStatus {
  return {
    clusterId: CLUSTER,
    node: 'gpu-node-2',
    phase: 'quarantined',
    class: 'reboot-node',
    reasons: [],
    alerts: 1,
    resolvedAlerts: 0,
    waitingFor: 'operator: retry, mark-repaired, reject, release',
    quarantineReason: 'drain failed (DrainRefused)',
    outcome: null,
    reminders: 0,
    decisions: [],
    running: null,
    actions: ['retry', 'markRepaired', 'reject', 'release'],
    holdsDrainSlot: false,
    ...overrides,
  };
}

const accept = (name: string) => Promise.resolve(`${name} accepted`);

// The operator client against a fake Temporal client: which update each CLI / HTTP name sends, and
// what an operator reads when a decision is refused or finds no open run. The real workflow is in
// test/operator/operator.e2e.test.ts.
describe('OperatorClient decisions', () => {
  it('sends each decision as its update, retry-drain as retry, with who and why', async () => {
    const { operator, updates } = fakeTemporal(new Map(), accept);
    const names = [...Object.keys(DECISIONS), ...Object.keys(DECISION_ALIASES)] as (
      DecisionName | DecisionAlias
    )[];
    for (const name of names) {
      assert.equal(
        await operator.decide('gpu-node-2', name, { by: 'bob', reason: name }),
        `${name === 'retry-drain' ? 'retry' : DECISIONS[name]} accepted`,
      );
    }
    assert.deepEqual(updates, [
      ['remediation/fmunit/gpu-node-2', 'approve', { by: 'bob', reason: 'approve' }],
      ['remediation/fmunit/gpu-node-2', 'reject', { by: 'bob', reason: 'reject' }],
      ['remediation/fmunit/gpu-node-2', 'markRepaired', { by: 'bob', reason: 'mark-repaired' }],
      ['remediation/fmunit/gpu-node-2', 'release', { by: 'bob', reason: 'release' }],
      ['remediation/fmunit/gpu-node-2', 'retry', { by: 'bob', reason: 'retry' }],
      ['remediation/fmunit/gpu-node-2', 'retry', { by: 'bob', reason: 'retry-drain' }],
    ]);
  });

  it('refuses without an identity or with a bad node name, sending nothing', async () => {
    const { operator, updates } = fakeTemporal(new Map(), accept);
    await assert.rejects(
      operator.decide('gpu-node-2', 'release', { by: ' ' }),
      (err: unknown) =>
        err instanceof OperatorError && err.kind === 'invalid' && /identity/.test(err.message),
    );
    await assert.rejects(
      operator.decide('GPU_2', 'retry', { by: 'bob' }),
      (err: unknown) =>
        err instanceof OperatorError && err.kind === 'invalid' && /DNS-1123/.test(err.message),
    );
    assert.deepEqual(updates, []);
  });

  it("gives invalid input the taxonomy's InvalidInput code, permanent, with the message the CLI prints", async () => {
    const { operator } = fakeTemporal(new Map(), accept);
    // The CLI prints the message of any FleetmedicError and exits 1 (src/cli/main.ts): both unchanged.
    const cases: [Promise<unknown>, string][] = [
      [operator.decide('gpu-node-2', 'release', { by: '' }), 'an operator identity (by) is required'],
      [
        operator.node('GPU_2'),
        'invalid node name "GPU_2": a node name is a DNS-1123 subdomain: lower-case letters, digits, "-" and "."',
      ],
      [
        operator.list({ phase: 'sleeping' }),
        `unknown phase "sleeping"; expected one of ${REMEDIATION_PHASES.join(', ')}`,
      ],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof OperatorError && err instanceof FleetmedicError);
        assert.equal(err.kind, 'invalid');
        assert.equal(err.code, FailureType.InvalidInput);
        assert.equal(err.permanent, true);
        assert.equal(err.message, message);
        return true;
      });
    }
  });

  it("passes the validator's refusal on in CLI names, led by the decision once", async () => {
    const cases: [DecisionName | DecisionAlias, string, string][] = [
      [
        'approve',
        'approve refused: node gpu-node-2 is not waiting for approve (phase quarantined; it accepts retry, markRepaired, reject, release)',
        'approve refused: node gpu-node-2 is not waiting for approve (phase quarantined; it accepts retry, mark-repaired, reject, release)',
      ],
      [
        'retry-drain',
        'retry refused: node gpu-node-2 is not waiting for retry (phase quarantined; it accepts markRepaired, release)',
        'retry refused: node gpu-node-2 is not waiting for retry (phase quarantined; it accepts mark-repaired, release)',
      ],
      [
        'mark-repaired',
        'markRepaired refused: reject by alice is pending until the drain step returns',
        'mark-repaired refused: reject by alice is pending until the drain step returns',
      ],
      // A validator whose message does not name the decision gets it in front.
      [
        'release',
        'node gpu-node-2 is not waiting for a decision (phase draining)',
        'release refused: node gpu-node-2 is not waiting for a decision (phase draining)',
      ],
    ];
    for (const [decision, message, expected] of cases) {
      const { operator } = fakeTemporal(new Map(), () =>
        Promise.reject(new WorkflowUpdateFailedError('Workflow Update failed', new Error(message))),
      );
      await assert.rejects(operator.decide('gpu-node-2', decision, { by: 'bob' }), (err: unknown) => {
        assert.ok(err instanceof OperatorError);
        assert.equal(err.kind, 'refused');
        assert.equal(err.message, expected);
        return true;
      });
    }
  });

  it('says a node has no open remediation, how the last one ended, and what to do', async () => {
    const runs = new Map<string, Run>([
      [
        'remediation/fmunit/gpu-node-2',
        {
          runId: 'run-1',
          status: 'COMPLETED',
          outcome: 'returned-to-service',
          remediation: status({ phase: 'done', outcome: 'returned-to-service', actions: [] }),
        },
      ],
    ]);
    const gone = () =>
      Promise.reject(new WorkflowNotFoundError('workflow execution already completed', '', ''));
    const { operator } = fakeTemporal(runs, gone);
    await assert.rejects(operator.decide('gpu-node-2', 'release', { by: 'bob' }), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.equal(err.kind, 'refused');
      assert.match(
        err.message,
        /^release refused: node gpu-node-2 has no open remediation to release: its last one has ended \(completed, outcome returned-to-service; `fleetmedic status gpu-node-2` shows it\); fleetmedic holds a node only while its remediation is open\. If the node is still quarantined, `fleetmedic remediate gpu-node-2` starts/,
      );
      return true;
    });
    await assert.rejects(operator.decide('gpu-node-2', 'retry-drain', { by: 'bob' }), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.match(
        err.message,
        /^retry refused: node gpu-node-2 has no open remediation to retry: .*a new firing alert, or `fleetmedic remediate gpu-node-2`, starts a new remediation$/,
      );
      return true;
    });
    await assert.rejects(operator.decide('gpu-node-9', 'mark-repaired', { by: 'bob' }), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.equal(err.kind, 'not-found');
      assert.match(
        err.message,
        /^mark-repaired refused: node gpu-node-9 has no open remediation to mark repaired \(Temporal keeps none for it in cluster fmunit\); .*`fleetmedic remediate gpu-node-9`/,
      );
      return true;
    });
  });
});

describe('OperatorClient node', () => {
  it('names the decisions an open run accepts as the CLI and HTTP do; a closed run accepts none', async () => {
    const runs = new Map<string, Run>([
      ['remediation/fmunit/gpu-node-2', { runId: 'run-1', status: 'RUNNING', remediation: status() }],
      [
        'remediation/fmunit/gpu-node-3',
        { runId: 'run-2', status: 'COMPLETED', remediation: status({ phase: 'done', actions: ['release'] }) },
      ],
    ]);
    const { operator } = fakeTemporal(runs, accept);
    const open = await operator.node('gpu-node-2');
    assert.deepEqual(open.actions, ['retry', 'mark-repaired', 'reject', 'release']);
    assert.deepEqual(open.remediation?.actions, ['retry', 'markRepaired', 'reject', 'release']);
    assert.deepEqual((await operator.node('gpu-node-3')).actions, []);
  });

  it('reads a status recorded before it carried actions as accepting none', async () => {
    const { actions: _actions, ...old } = status();
    const runs = new Map<string, Run>([
      [
        'remediation/fmunit/gpu-node-2',
        { runId: 'run-1', status: 'RUNNING', remediation: old as unknown as RemediationStatus },
      ],
    ]);
    const { operator } = fakeTemporal(runs, accept);
    assert.deepEqual((await operator.node('gpu-node-2')).actions, []);
  });
});

describe('OperatorClient budget', () => {
  // A closed budget's query would wait for a worker of its old task queue (gone once the process
  // that served it exited) and fail after its deadline: `status` crashed that way.
  function budgetClient(status: 'RUNNING' | 'TERMINATED') {
    const queried: string[] = [];
    const client = {
      withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
      workflow: {
        getHandle: (workflowId: string) => ({
          describe: () => Promise.resolve({ workflowId, status: { name: status } }),
          query: () => {
            queried.push(workflowId);
            if (status !== 'RUNNING') return Promise.reject(new Error('Failed to query Workflow'));
            return Promise.resolve({
              paused: false,
              draining: ['gpu-node-1'],
              queue: [],
              breaker: { open: false },
              healthyNodes: ['gpu-node-1', 'gpu-node-2'],
              gpuNodeCount: 2,
              config: { maxConcurrentDrains: 1, minHealthyFraction: 0.5 },
            });
          },
        }),
      },
    } as unknown as Client;
    return { queried, operator: new OperatorClient(client, { clusterId: CLUSTER, taskQueue: 'q' }) };
  }

  it('reads a closed budget as none, without querying it', async () => {
    const { queried, operator } = budgetClient('TERMINATED');
    assert.equal(await operator.budget(), null);
    assert.deepEqual(queried, []);
  });

  it('queries a running budget', async () => {
    const { operator } = budgetClient('RUNNING');
    const budget = await operator.budget();
    assert.deepEqual(budget?.draining, ['gpu-node-1']);
    assert.equal(budget?.limit, 1);
  });
});
