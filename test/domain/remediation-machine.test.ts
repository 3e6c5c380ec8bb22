import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  acquireSlot,
  admitDrain,
  DEFAULT_FLEET_BUDGET,
  enqueue,
  initialFleetState,
  nextInQueue,
  QUEUEING_REFUSALS,
  releaseSlot,
  dequeue,
  type Admission,
  type FleetState,
} from '../../src/domain/fleet-budget.js';
import { requiresQuarantine, severityOf, type RemediationClass } from '../../src/domain/remediation-class.js';
import {
  actionsAllowed,
  initialState,
  isActivityCommand,
  STATE_LIMITS,
  step,
  validateDecision,
  view,
  type ActivityFailure,
  type ActivityKind,
  type ActivityOutcome,
  type ActivityResults,
  type Command,
  type MachineEvent,
  type OperatorAction,
  type RemediationOutcome,
  type RemediationState,
} from '../../src/domain/remediation-machine.js';
import {
  classifyAlert,
  DEFAULT_REMEDIATION_POLICY,
  type AlertSignal,
  type RemediationPolicy,
} from '../../src/domain/remediation-plan.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const POLICY: RemediationPolicy = { ...DEFAULT_REMEDIATION_POLICY };

// ---------------------------------------------------------------------------------------------
// Helpers

/** An alert: an XID (or a DCGM code as a string), firing, its own episode unless told. */
function alert(
  code: number | string | null,
  opts: { episode?: string; gpu?: number; status?: 'firing' | 'resolved'; pods?: string[] } = {},
): AlertSignal {
  return {
    alertName: typeof code === 'number' ? `GpuXid${code}` : `Gpu${code ?? 'Unknown'}`,
    status: opts.status ?? 'firing',
    episodeKey: opts.episode ?? `fp-${String(code)}@2026-03-01T12:00:00Z`,
    ...(typeof code === 'number' && { xid: code }),
    ...(typeof code === 'string' && { dcgmCode: code }),
    ...(opts.gpu !== undefined && { gpu: opts.gpu }),
    ...(opts.pods && { pods: opts.pods.map((name) => ({ namespace: 'ml', name })) }),
    source: 'test',
  };
}

const ok = <K extends ActivityKind>(activity: K, result: ActivityResults[K]): MachineEvent =>
  ({ type: 'result', activity, result }) as ActivityOutcome;
const fail = (activity: ActivityKind, failure: Omit<ActivityFailure, 'failed'>): MachineEvent => ({
  type: 'result',
  activity,
  result: { failed: true, ...failure },
});
const quarantined = (over: Partial<Extract<ActivityResults['quarantine'], { kind: 'quarantined' }>> = {}) =>
  ok('quarantine', {
    kind: 'quarantined',
    gpuCount: 8,
    preexistingCordon: false,
    episodes: 'new',
    hold: null,
    ...over,
  });
const admitted: MachineEvent = ok('requestSlot', {
  admission: { admitted: true, escalateTo: null, detail: '1 of 1 drain slot(s) in use' },
});
const fits: MachineEvent = ok('checkCapacity', { fits: true, detail: '' });
const noFit: MachineEvent = ok('checkCapacity', { fits: false, detail: 'ml/web-0: no node has 8 GPUs free' });
const drained: MachineEvent = ok('drain', { evicted: 3, refused429: 1 });
const passed: MachineEvent = ok('validate', { diag: { passed: true, runtimeError: null, errors: [] } });
const released: MachineEvent = ok('release', { leftCordoned: false });
const decide = (action: OperatorAction, by = 'alice', reason?: string): MachineEvent => ({
  type: 'decision',
  decision: { action, by, ...(reason !== undefined && { reason }) },
});

/** One run of the machine, fed by a test, with every command it returned. */
class Run {
  state: RemediationState;
  now = T0;
  readonly log: Command[] = [];
  last: readonly Command[] = [];

  constructor(policy: RemediationPolicy = POLICY, node = 'gpu-node-7') {
    this.state = initialState(node, policy);
  }

  feed(...events: MachineEvent[]): readonly Command[] {
    const all: Command[] = [];
    for (const event of events) {
      this.now += 1000;
      const r = step(this.state, event, this.now);
      this.state = r.state;
      all.push(...r.commands);
    }
    this.log.push(...all);
    this.last = all;
    return all;
  }

  /** Waits `ms`, then fires the newest timer. */
  fireTimer(ms = 0): readonly Command[] {
    const timers = this.log.filter((c) => c.type === 'startTimer');
    const last = timers[timers.length - 1];
    assert.ok(last, 'no timer was started');
    this.now += ms;
    return this.feed({ type: 'timer', id: last.id });
  }

  types(commands: readonly Command[] = this.last): string[] {
    return commands.map((c) => c.type);
  }

  get phase() {
    return view(this.state).phase;
  }

  /** Takes an XID 79 (reboot) to the approval wait after its drain. */
  static awaitingReboot(): Run {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79, { gpu: 3 }) }, quarantined(), ok('triage', { evidence: {} }));
    run.feed(admitted, fits, drained);
    assert.equal(run.phase, 'awaiting-approval');
    return run;
  }
}

const finishOf = (commands: readonly Command[]) => commands.find((c) => c.type === 'finish');
/** The notification kinds among `commands`. */
const notified = (commands: readonly Command[]) =>
  commands.flatMap((c) => (c.type === 'notify' ? [c.kind] : []));
/** Which of `types` the run ever returned (the tests expect none). */
const ran = (run: Run, ...types: string[]) => run.types(run.log).filter((t) => types.includes(t));
// assert.ok is always given a message here: without one, Node reads the source to write one, which hangs under tsx.

// ---------------------------------------------------------------------------------------------
// The promises of issue #13, one table per promise

describe('remediation machine: a. a higher class is never swallowed', () => {
  it('XID 79 during an XID 13 pod restart continues to quarantine', () => {
    const run = new Run();
    assert.deepEqual(run.types(run.feed({ type: 'alert', alert: alert(13, { pods: ['web-0'] }) })), [
      'checkEpisode',
    ]);
    run.feed(ok('checkEpisode', { verdict: 'new' }));
    assert.equal(run.phase, 'restarting-pods');
    run.feed({ type: 'alert', alert: alert(79, { gpu: 1 }) });
    const after = run.feed(ok('restartPods', { restarted: 1 }));
    assert.deepEqual(run.types(after), ['quarantine']);
    assert.equal(after[0]!.type === 'quarantine' && after[0].episode, alert(79).episodeKey);
    assert.equal(run.state.class, 'reboot-node');
  });

  it('an XID 79 that joins an ignored alert during its episode check is quarantined', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(14) }, { type: 'alert', alert: alert(79) });
    assert.deepEqual(run.types(run.feed(ok('checkEpisode', { verdict: 'new' }))), ['quarantine']);
  });

  it('on the duplicate-episode path, an XID 79 that joined meanwhile is quarantined', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(13) }, { type: 'alert', alert: alert(79) });
    const after = run.feed(ok('checkEpisode', { verdict: 'handled' }));
    assert.deepEqual(run.types(after), ['quarantine']);
    assert.equal(finishOf(run.log), undefined);
  });

  it('a quarantined episode found handled does not swallow a new one that joined during the quarantine', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79, { episode: 'old' }) });
    run.feed({ type: 'alert', alert: alert(48, { episode: 'new' }) });
    const after = run.feed(ok('quarantine', { kind: 'duplicate-episode' }));
    assert.deepEqual(run.types(after), ['quarantine']);
    assert.equal(after[0]!.type === 'quarantine' && after[0].episode, 'new');
    assert.equal(run.state.class, 'reset-gpu');
    // A re-send of the handled episode changes nothing any more.
    assert.deepEqual(run.feed({ type: 'alert', alert: alert(79, { episode: 'old' }) }), []);
  });

  it('a higher class during triage is kept: the repair follows the higher class', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined());
    run.feed({ type: 'alert', alert: alert(79) }, ok('triage', { evidence: {} }), admitted, fits, drained);
    assert.equal(run.phase, 'awaiting-approval');
    assert.deepEqual(ran(run, 'resetGpu'), []);
  });
});

describe('remediation machine: b. reject wins', () => {
  it('a reject accepted during a capacity re-check holds the node when it returns: no drain', () => {
    const run = new Run();
    run.feed(
      { type: 'alert', alert: alert(79) },
      quarantined(),
      ok('triage', { evidence: {} }),
      admitted,
      noFit,
    );
    assert.equal(run.phase, 'waiting-for-capacity');
    run.fireTimer(POLICY.capacityRetryMs);
    assert.equal(run.state.inFlight, 'checkCapacity');
    assert.equal(validateDecision(run.state, { action: 'reject', by: 'bob' }), undefined);
    assert.deepEqual(run.feed(decide('reject', 'bob', 'RMA')), []);
    const after = run.feed(fits);
    assert.deepEqual(run.types(after), ['holdNode', 'releaseSlot', 'startTimer', 'notify']);
    assert.equal(finishOf(after), undefined);
    assert.equal(run.phase, 'quarantined');
    assert.deepEqual(ran(run, 'drain'), []);
  });

  it('a reject accepted during the drain is honoured when it returns: no reset, validation or release', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined(), ok('triage', { evidence: {} }));
    run.feed(admitted, fits);
    assert.equal(run.phase, 'draining');
    run.feed(decide('reject'));
    const after = run.feed(drained);
    assert.deepEqual(run.types(after), ['releaseSlot', 'holdNode', 'startTimer', 'notify']);
    assert.deepEqual(ran(run, 'resetGpu', 'validate', 'release'), []);
  });

  it('a reject accepted during validation keeps the node quarantined although it passed', () => {
    const run = Run.awaitingReboot();
    run.feed(
      decide('approve'),
      ok('readBootId', { bootId: 'boot-1' }),
      ok('reboot', { alreadyRebooted: false }),
      ok('awaitBoot', { bootId: 'boot-2' }),
    );
    assert.equal(run.phase, 'validating');
    run.feed(decide('reject'));
    const after = run.feed(passed);
    assert.deepEqual(run.types(after), ['holdNode', 'startTimer', 'notify']);
    assert.equal(view(run.state).outcome, null);
    assert.equal(view(run.state).phase, 'quarantined');
    assert.match(view(run.state).quarantineReason ?? '', /rejected by alice/);
    assert.deepEqual([...actionsAllowed(run.state)], ['markRepaired', 'release']);
  });

  it('a reject accepted while a slot is requested releases the slot it is granted', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79) }, quarantined(), ok('triage', { evidence: {} }));
    assert.equal(run.state.inFlight, 'requestSlot');
    run.feed(decide('reject'));
    assert.deepEqual(run.types(run.feed(admitted)), ['holdNode', 'releaseSlot', 'startTimer', 'notify']);
  });

  it('a decision recorded during an activity is never overtaken: later ones are refused until it applies', () => {
    const run = new Run();
    run.feed(
      { type: 'alert', alert: alert(79) },
      quarantined(),
      ok('triage', { evidence: {} }),
      admitted,
      noFit,
    );
    run.fireTimer(POLICY.capacityRetryMs);
    run.feed(decide('approve', 'alice'));
    assert.match(
      validateDecision(run.state, { action: 'reject', by: 'bob' }) ?? '',
      /approve by alice is pending/,
    );
    assert.deepEqual(run.feed(decide('reject', 'bob')), []);
    // The pods still do not fit: the approve (drain anyway) applies.
    assert.deepEqual(run.types(run.feed(noFit)), ['drain']);
    assert.deepEqual(
      run.state.decisions.map((d) => d.action),
      ['approve'],
    );
  });

  const where: [string, () => Run, OperatorAction[]][] = [
    ['received', () => new Run(), []],
    [
      'quarantining',
      () => {
        const r = new Run();
        r.feed({ type: 'alert', alert: alert(79) });
        return r;
      },
      [],
    ],
    [
      'waiting-for-capacity before a check said no',
      () => {
        const r = new Run();
        r.feed({ type: 'alert', alert: alert(79) }, quarantined(), ok('triage', { evidence: {} }), admitted);
        return r;
      },
      ['reject'],
    ],
    [
      'waiting-for-capacity after a check said no',
      () => {
        const r = new Run();
        r.feed(
          { type: 'alert', alert: alert(79) },
          quarantined(),
          ok('triage', { evidence: {} }),
          admitted,
          noFit,
        );
        return r;
      },
      ['approve', 'reject'],
    ],
    ['awaiting approval of a reboot', () => Run.awaitingReboot(), ['approve', 'reject', 'markRepaired']],
    [
      'awaiting an operator-only repair',
      () => {
        const r = new Run();
        r.feed(
          { type: 'alert', alert: alert(1) },
          quarantined(),
          ok('triage', { evidence: {} }),
          admitted,
          fits,
          drained,
        );
        return r;
      },
      ['reject', 'markRepaired'],
    ],
    [
      'releasing',
      () => {
        const r = Run.awaitingReboot();
        r.feed(decide('markRepaired'), passed);
        return r;
      },
      [],
    ],
  ];
  for (const [name, make, allowed] of where) {
    it(`validators accept decisions only where they apply: ${name} accepts ${allowed.join(', ') || 'none'}`, () => {
      const run = make();
      assert.deepEqual([...actionsAllowed(run.state)], allowed);
      for (const action of ['approve', 'reject', 'markRepaired', 'release', 'retry'] as const) {
        const refused = validateDecision(run.state, { action, by: 'alice' });
        assert.equal(refused === undefined, allowed.includes(action), `${action}: ${refused ?? 'accepted'}`);
      }
    });
  }

  it('validators refuse a decision with no operator identity, naming what is missing', () => {
    const run = Run.awaitingReboot();
    assert.match(validateDecision(run.state, { action: 'approve', by: ' ' }) ?? '', /operator identity/);
    assert.match(
      validateDecision(run.state, { action: 'launch' as OperatorAction, by: 'a' }) ?? '',
      /unknown operator action "launch"/,
    );
  });
});

describe('remediation machine: c. a reject sticks to the node', () => {
  it('a reject marks the node; a new run finds the mark and waits for an operator instead of repairing', () => {
    const first = Run.awaitingReboot();
    const end = first.feed(decide('reject', 'bob', 'RMA'));
    assert.deepEqual(
      end.find((c) => c.type === 'holdNode'),
      { type: 'holdNode', by: 'bob', reason: 'RMA' },
    );

    const next = new Run();
    next.feed({ type: 'alert', alert: alert(79) }, quarantined({ hold: { by: 'bob', reason: 'RMA' } }));
    assert.equal(next.phase, 'quarantined');
    assert.match(view(next.state).quarantineReason ?? '', /rejected by bob: RMA/);
    assert.deepEqual([...actionsAllowed(next.state)], ['markRepaired', 'release']);
    // Re-sent and new alerts, reminders: nothing is drained, repaired or released.
    next.feed({ type: 'alert', alert: alert(79) }, { type: 'alert', alert: alert(48, { episode: 'x' }) });
    next.fireTimer(POLICY.approvalReminderMs);
    assert.deepEqual(
      ran(next, 'triage', 'requestSlot', 'drain', 'resetGpu', 'reboot', 'validate', 'release'),
      [],
    );
  });

  it('only an explicit release or mark-repaired clears the hold', () => {
    const rel = new Run();
    rel.feed({ type: 'alert', alert: alert(79) }, quarantined({ hold: { by: 'bob', reason: 'RMA' } }));
    assert.deepEqual(rel.types(rel.feed(decide('release', 'carol', 'part swapped'))), [
      'clearHold',
      'release',
    ]);
    rel.feed(released);
    assert.equal(view(rel.state).outcome, 'released-by-operator');

    const fixed = new Run();
    fixed.feed({ type: 'alert', alert: alert(79) }, quarantined({ hold: { by: 'bob', reason: 'RMA' } }));
    assert.deepEqual(fixed.types(fixed.feed(decide('markRepaired', 'carol'))), ['clearHold', 'validate']);
    assert.deepEqual(fixed.types(fixed.feed(passed)), ['recordRemediation', 'release']);
  });
});

describe('remediation machine: d. an episode is handled once', () => {
  it('a re-sent alert for the same episode never re-quarantines, and the episode is recorded at the end', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 2 }) });
    for (let i = 0; i < 5; i++) run.feed({ type: 'alert', alert: alert(48, { gpu: 2 }) });
    run.feed(quarantined(), ok('triage', { evidence: {} }));
    run.feed({ type: 'alert', alert: alert(48, { gpu: 2 }) }, admitted, fits, drained);
    run.feed(ok('resetGpu', { gpu: 2 }), passed, released);
    assert.equal(run.types(run.log).filter((t) => t === 'quarantine').length, 1);
    assert.deepEqual(
      run.log.find((c) => c.type === 'recordEpisodes'),
      {
        type: 'recordEpisodes',
        episodes: [alert(48).episodeKey],
      },
    );
    assert.equal(view(run.state).outcome, 'returned-to-service');
  });

  it('a new run for an episode the node recorded ends as duplicate-episode without quarantine', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48) });
    const end = run.feed(ok('quarantine', { kind: 'duplicate-episode' }));
    assert.deepEqual(run.types(end), ['finish']);
    assert.equal(view(run.state).outcome, 'duplicate-episode');
  });

  it('an unreadable episode annotation sends the run to an operator (the node stays cordoned)', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48) });
    const after = run.feed(quarantined({ episodes: 'unreadable' }));
    assert.deepEqual(run.types(after), ['startTimer', 'notify']);
    assert.equal(run.phase, 'quarantined');
    assert.match(view(run.state).quarantineReason ?? '', /handled-episodes annotation cannot be read/);
    assert.deepEqual([...actionsAllowed(run.state)], ['retry', 'markRepaired', 'reject', 'release']);
    assert.deepEqual(run.types(run.feed(decide('retry'))), ['quarantine']);
  });
});

describe('remediation machine: e. no failure closes the run with the node cordoned', () => {
  const failures: [string, (run: Run) => void, MachineEvent, string][] = [
    [
      'drain refused',
      (r) => r.feed(admitted, fits),
      fail('drain', { permanent: true, failureType: 'DrainRefused', message: 'pods need --force' }),
      'drain',
    ],
    [
      'drain deadline',
      (r) => r.feed(admitted, fits),
      fail('drain', { permanent: true, failureType: 'DrainDeadlineExceeded', message: '2 pods left' }),
      'drain',
    ],
    [
      'drain not owner',
      (r) => r.feed(admitted, fits),
      fail('drain', { permanent: true, failureType: 'NotOwner', message: 'cordoned by wf-x' }),
      'drain',
    ],
    [
      'drain retries exhausted',
      (r) => r.feed(admitted, fits),
      fail('drain', { permanent: false, message: 'timeout' }),
      'drain',
    ],
    [
      'release not owner',
      (r) => r.feed(admitted, fits, drained, ok('resetGpu', { gpu: 0 }), passed),
      fail('release', { permanent: true, failureType: 'NotOwner', message: 'owned by wf-y' }),
      'release',
    ],
    [
      'release invalid annotation',
      (r) => r.feed(admitted, fits, drained, ok('resetGpu', { gpu: 0 }), passed),
      fail('release', { permanent: true, failureType: 'InvalidAnnotation', message: 'bad JSON' }),
      'release',
    ],
  ];
  for (const [name, before, failure, retried] of failures) {
    it(`${name}: the run stays open in quarantined with the reason, notifies, offers retry, mark-repaired, reject and release`, () => {
      const run = new Run();
      run.feed(
        { type: 'alert', alert: alert(48, { gpu: 0 }) },
        quarantined(),
        ok('triage', { evidence: {} }),
      );
      before(run);
      const after = run.feed(failure);
      assert.equal(finishOf(after), undefined);
      assert.equal(run.phase, 'quarantined');
      assert.ok(notified(after).includes('needs-operator'), 'needs-operator notified');
      assert.match(view(run.state).quarantineReason ?? '', new RegExp(`${retried} failed`));
      assert.deepEqual([...actionsAllowed(run.state)], ['retry', 'markRepaired', 'reject', 'release']);
      assert.equal(run.state.slotHeld, false);
    });
  }

  it('a quarantine refused for an invalid annotation waits for an operator too', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79) });
    const after = run.feed(
      fail('quarantine', { permanent: true, failureType: 'InvalidAnnotation', message: 'x' }),
    );
    assert.equal(finishOf(after), undefined);
    assert.equal(run.phase, 'quarantined');
  });

  it('retry-drain asks the budget for a slot again before draining', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined(), ok('triage', { evidence: {} }));
    run.feed(admitted, fits, fail('drain', { permanent: true, failureType: 'DrainRefused', message: 'x' }));
    assert.deepEqual(run.types(run.feed(decide('retry', 'bob'))), ['requestSlot']);
    assert.deepEqual(run.types(run.feed(admitted, fits)), ['checkCapacity', 'drain']);
  });

  it('validation failed: quarantined with the reason until an operator marks it repaired or rejects', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined(), ok('triage', { evidence: {} }));
    run.feed(admitted, fits, drained, ok('resetGpu', { gpu: 0 }));
    const after = run.feed(
      ok('validate', {
        diag: {
          passed: false,
          runtimeError: null,
          errors: [{ test: 'memory', code: null, name: null, message: 'DBE', gpu: 0, status: 'Fail' }],
        },
      }),
    );
    assert.ok(notified(after).includes('validation-failed'), 'validation-failed notified');
    assert.match(view(run.state).quarantineReason ?? '', /validation failed: memory: DBE/);
    assert.deepEqual([...actionsAllowed(run.state)], ['markRepaired', 'reject', 'release']);
  });
});

describe('remediation machine: f. escalation during an approval wait', () => {
  it('recomputes the repair plan and asks again when it changed', () => {
    const run = Run.awaitingReboot();
    const asked = view(run.state).waitingFor;
    const after = run.feed({
      type: 'alert',
      alert: alert('UNCORRECTABLE_ROW_REMAP_LIMIT', { episode: 'remap' }),
    });
    assert.equal(run.state.class, 'replace-hardware');
    assert.ok(
      after.some((c) => c.type === 'notify' && c.kind === 'needs-operator' && /replace/.test(c.message)),
      'asked again for the new plan',
    );
    assert.notEqual(view(run.state).waitingFor, asked);
    // Approving the reboot the operator was first asked about no longer applies.
    assert.match(
      validateDecision(run.state, { action: 'approve', by: 'alice' }) ?? '',
      /not waiting for approve/,
    );
  });

  it('a re-sent alert during the wait asks nothing again', () => {
    const run = Run.awaitingReboot();
    assert.deepEqual(run.feed({ type: 'alert', alert: alert(79, { gpu: 3 }) }), []);
  });

  it('an escalation while an approved reset runs asks again instead of validating', () => {
    const policy = { ...POLICY, autoReset: false };
    const run = new Run(policy);
    run.feed({ type: 'alert', alert: alert(48, { gpu: 1 }) }, quarantined(), ok('triage', { evidence: {} }));
    run.feed(admitted, fits, drained, decide('approve'));
    assert.equal(run.phase, 'repairing');
    run.feed({ type: 'alert', alert: alert(79, { episode: 'bus' }) });
    run.feed(ok('resetGpu', { gpu: 1 }));
    assert.equal(run.phase, 'awaiting-approval');
    assert.deepEqual(ran(run, 'validate'), []);
  });
});

describe('remediation machine: g. drain concurrency is not out-of-service time', () => {
  it('the drain slot is released when the drain ends, before the repair waits for an operator', () => {
    const run = Run.awaitingReboot();
    const drainAt = run.types(run.log).indexOf('drain');
    const releaseAt = run.types(run.log).indexOf('releaseSlot');
    assert.ok(releaseAt > drainAt, `releaseSlot at ${releaseAt}, drain at ${drainAt}`);
    assert.equal(run.state.slotHeld, false);
    // Weeks in approval hold no slot, and the end releases none twice.
    run.fireTimer(POLICY.approvalReminderMs);
    run.feed(decide('reject'));
    assert.equal(run.types(run.log).filter((t) => t === 'releaseSlot').length, 1);
  });

  it('a failed drain returns its slot too', () => {
    const run = new Run();
    run.feed(
      { type: 'alert', alert: alert(79) },
      quarantined(),
      ok('triage', { evidence: {} }),
      admitted,
      fits,
    );
    const after = run.feed(
      fail('drain', { permanent: true, failureType: 'DrainDeadlineExceeded', message: 'x' }),
    );
    assert.equal(after[0]?.type, 'releaseSlot');
  });
});

describe('remediation machine: i. triage expects the node’s own GPU count', () => {
  const fourGpus = { gpus: [0, 1, 2, 3].map((i) => ({ index: i, 'remapped_rows.failure': 'No' })) };

  it('an XID 48 on a 4-GPU node is reset, not escalated to a reboot', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 2 }) });
    const cmds = run.feed(quarantined({ gpuCount: 4 }));
    assert.deepEqual(cmds, [{ type: 'triage', expectedGpuCount: 4 }]);
    // Even if the agent claims 8, the node's capacity decides.
    run.feed(ok('triage', { evidence: { ...fourGpus, expectedGpuCount: 8 } }), admitted, fits);
    assert.equal(run.state.class, 'reset-gpu');
    assert.deepEqual(
      run.feed(drained).filter((c) => c.type === 'resetGpu'),
      [{ type: 'resetGpu', gpu: 2 }],
    );
  });

  it('with no GPU named, every GPU of the node is reset: 0 to 3 on a 4-GPU node', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48) }, quarantined({ gpuCount: 4 }));
    run.feed(ok('triage', { evidence: fourGpus }), admitted, fits, drained);
    const resets: number[] = [];
    while (run.state.inFlight === 'resetGpu') {
      const gpu = (run.log.filter((c) => c.type === 'resetGpu').pop() as { gpu: number }).gpu;
      resets.push(gpu);
      run.feed(ok('resetGpu', { gpu }));
    }
    assert.deepEqual(resets, [0, 1, 2, 3]);
    assert.equal(run.phase, 'validating');
  });

  it('a node with fewer GPUs than its capacity is escalated to a reboot', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined({ gpuCount: 4 }));
    run.feed(ok('triage', { evidence: { gpus: fourGpus.gpus.slice(0, 3) } }));
    assert.equal(run.state.class, 'reboot-node');
  });

  it('with no GPU named and no GPU count, an operator resets by hand (fail safe)', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48) }, quarantined({ gpuCount: null }));
    run.feed(ok('triage', { evidence: {} }), admitted, fits, drained);
    assert.equal(run.phase, 'awaiting-approval');
    assert.deepEqual(ran(run, 'resetGpu'), []);
  });
});

describe('remediation machine: n. a node held for weeks', () => {
  it('continues as new with the machine’s state when Temporal suggests it, and stays small', () => {
    const run = Run.awaitingReboot();
    run.feed(
      decide('markRepaired'),
      ok('validate', { diag: { passed: false, runtimeError: 'diag', errors: [] } }),
    );
    assert.equal(run.phase, 'quarantined');
    const size0 = JSON.stringify(run.state).length;
    // Three weeks of reminders and re-sent alerts.
    for (let i = 0; i < 3 * 7 * 24 * 4; i++) {
      run.fireTimer(POLICY.approvalReminderMs);
      run.feed({ type: 'alert', alert: alert(79, { episode: `resend-${i % 50}` }) });
    }
    assert.ok(JSON.stringify(run.state).length < size0 + 12_000, `${JSON.stringify(run.state).length}`);
    assert.ok(run.state.episodes.length <= STATE_LIMITS.episodes, `${run.state.episodes.length} episodes`);
    const cmds = run.feed({ type: 'continue-as-new-suggested' });
    const can = cmds.find((c) => c.type === 'continueAsNew');
    assert.ok(can?.type === 'continueAsNew', 'continueAsNew returned');
    // The next run resumes the hold: a reminder timer again, the same reason and actions.
    const next = step(
      JSON.parse(JSON.stringify(can.state)) as RemediationState,
      { type: 'resumed' },
      run.now,
    );
    assert.deepEqual(
      next.commands.map((c) => c.type),
      ['startTimer'],
    );
    assert.equal(view(next.state).quarantineReason, view(run.state).quarantineReason);
    assert.deepEqual(actionsAllowed(next.state), actionsAllowed(run.state));
    assert.ok(notified(run.log).includes('escalated'), 'escalated notified');
  });

  it('waits for the step in flight before continuing as new', () => {
    const run = new Run();
    run.feed(
      { type: 'alert', alert: alert(79) },
      quarantined(),
      ok('triage', { evidence: {} }),
      admitted,
      fits,
    );
    assert.deepEqual(run.feed({ type: 'continue-as-new-suggested' }), []);
    assert.deepEqual(run.types(run.feed(drained)).slice(-1), ['continueAsNew']);
  });
});

describe('remediation machine: the rest of the procedure', () => {
  it('storm damping: in a burst the node waits stormSettleMs in quarantining before triage', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79) });
    assert.deepEqual(run.feed(quarantined({ recentFailures: 12 })), [
      { type: 'startTimer', id: 1, ms: POLICY.stormSettleMs, purpose: 'storm-settle' },
    ]);
    assert.equal(run.phase, 'quarantining');
    assert.match(view(run.state).waitingFor ?? '', /12 nodes failed within a minute/);
    assert.deepEqual(run.types(run.fireTimer(POLICY.stormSettleMs)), ['triage']);
  });

  it('a refused slot is asked for again later the further back in the queue, at once when signalled', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79) }, quarantined(), ok('triage', { evidence: {} }));
    const refused: Admission = { admitted: false, reason: 'queued', detail: '3 node(s) ahead', ahead: 3 };
    assert.deepEqual(run.feed(ok('requestSlot', { admission: refused })), [
      { type: 'startTimer', id: 1, ms: POLICY.budgetRetryMs * 4, purpose: 'budget-retry' },
    ]);
    assert.match(view(run.state).waitingFor ?? '', /a drain slot: 3 node\(s\) ahead/);
    assert.deepEqual(run.types(run.feed({ type: 'slot-free' })), ['requestSlot']);
    // The stale timer fires: nothing.
    assert.deepEqual(run.feed({ type: 'timer', id: 1 }), []);
  });

  it('the breaker refusing quarantine ends the run as automation-blocked with nothing cordoned', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(79) });
    const end = run.feed(
      ok('quarantine', {
        kind: 'blocked',
        verdict: { allowed: false, reason: 'breaker-open', detail: 'open' },
      }),
    );
    assert.deepEqual(run.types(end), ['notify', 'finish']);
    assert.equal(view(run.state).outcome, 'automation-blocked');
  });

  it('an unreachable agent at triage goes to an operator after the drain', () => {
    const run = new Run();
    run.feed({ type: 'alert', alert: alert(48, { gpu: 0 }) }, quarantined());
    const after = run.feed(fail('triage', { permanent: false, message: 'timeout', unreachable: true }));
    assert.ok(notified(after).includes('agent-unreachable'), 'agent-unreachable notified');
    assert.equal(run.state.class, 'needs-operator');
  });

  it('reminders go out every approvalReminderMs and say ESCALATED after escalateAfterMs', () => {
    const run = Run.awaitingReboot();
    const kinds: string[] = [];
    for (let i = 0; i < 17; i++)
      kinds.push(
        ...run.fireTimer(POLICY.approvalReminderMs).flatMap((c) => (c.type === 'notify' ? [c.kind] : [])),
      );
    assert.equal(kinds.filter((k) => k === 'escalated').length, 1);
    assert.equal(run.state.reminders, 17);
    assert.equal(run.phase, 'awaiting-approval');
  });

  it('the view is computed from the state: phase, reason, what it waits for, the actions', () => {
    const run = Run.awaitingReboot();
    const v = view(run.state);
    assert.equal(v.phase, 'awaiting-approval');
    assert.equal(v.class, 'reboot-node');
    assert.match(v.waitingFor ?? '', /^operator: approve a reboot/);
    assert.match(v.details, /\*\*awaiting-approval\*\* · class reboot-node/);
    assert.deepEqual([...v.actions], ['approve', 'reject', 'markRepaired']);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests: random alerts, activity outcomes, decisions and timers against a model world

const CODES: (number | string | null)[] = [14, 13, 48, 79, 1, 'UNCORRECTABLE_ROW_REMAP_LIMIT', null];
const EPISODES = ['e1', 'e2', 'e3', 'e4'];
// Rejects apply almost everywhere and end the run: rarer than the others, or few runs get far.
const ACTIONS: OperatorAction[] = [
  'approve',
  'approve',
  'approve',
  'markRepaired',
  'markRepaired',
  'retry',
  'retry',
  'release',
  'reject',
];

type Act =
  | {
      readonly k: 'alert';
      readonly node: number;
      readonly code: number;
      readonly ep: number;
      readonly resolved: boolean;
      readonly gpu: number;
    }
  | { readonly k: 'answer'; readonly node: number; readonly pick: number }
  | { readonly k: 'decide'; readonly node: number; readonly action: number; readonly nobody: boolean }
  | { readonly k: 'timer'; readonly node: number; readonly pick: number }
  | { readonly k: 'slot-free'; readonly node: number }
  | { readonly k: 'can'; readonly node: number };

const actArb = (nodes: number): fc.Arbitrary<{ act: Act; dt: number }> => {
  const node = fc.nat({ max: nodes - 1 });
  const act = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('alert' as const),
        node,
        code: fc.nat({ max: CODES.length - 1 }),
        ep: fc.nat({ max: EPISODES.length - 1 }),
        resolved: fc.nat({ max: 5 }).map((x) => x === 0),
        gpu: fc.integer({ min: -1, max: 7 }),
      }),
    },
    {
      weight: 8,
      arbitrary: fc.record({ k: fc.constant('answer' as const), node, pick: fc.nat({ max: 99 }) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        k: fc.constant('decide' as const),
        node,
        action: fc.nat({ max: ACTIONS.length - 1 }),
        nobody: fc.nat({ max: 9 }).map((x) => x === 0),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ k: fc.constant('timer' as const), node, pick: fc.nat({ max: 99 }) }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('slot-free' as const), node }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('can' as const), node }) },
  );
  return fc.record({ act, dt: fc.integer({ min: 0, max: 2 * HOUR }) });
};

/** The per-run facts the invariants are checked against, kept across continue-as-new. */
interface Tracker {
  fired: AlertSignal[];
  saidHandled: Set<string>;
  validated: boolean;
  operatorRelease: boolean;
  rejected: boolean;
  /** A reboot ran and no new boot was seen since (nor an operator's mark-repaired). */
  rebootUnverified: boolean;
}

interface NodeWorld {
  readonly name: string;
  run: RemediationState | null;
  track: Tracker;
  timers: number[];
  lastCommand: Map<ActivityKind, Command>;
  quarantined: boolean;
  hold: { by: string; reason: string } | null;
  handled: Set<string>;
  remediations: number[];
  /** The node's boot: its boot ID is `boot-<n>`. */
  boot: number;
}

interface World {
  readonly nodes: NodeWorld[];
  budget: FleetState | null;
  now: number;
  /** How runs ended, and `rejected` for each reject accepted. */
  ends: (RemediationOutcome | 'rejected')[];
  drains: number;
}

const newTracker = (): Tracker => ({
  fired: [],
  saidHandled: new Set(),
  validated: false,
  operatorRelease: false,
  rejected: false,
  rebootUnverified: false,
});

function newWorld(nodes: number, budget: FleetState | null): World {
  return {
    nodes: Array.from({ length: nodes }, (_, i) => ({
      name: `gpu-${i}`,
      run: null,
      track: newTracker(),
      timers: [],
      lastCommand: new Map(),
      quarantined: false,
      hold: null,
      handled: new Set(),
      remediations: [],
      boot: 0,
    })),
    budget,
    now: T0,
    ends: [],
    drains: 0,
  };
}

const pickOf = <T>(options: readonly T[], pick: number): T => options[pick % options.length]!;

/** What the world answers to the activity in flight, chosen by `pick` among plausible outcomes. */
function answerFor(w: World, n: NodeWorld, kind: ActivityKind, pick: number): MachineEvent {
  const gone = pick === 99;
  if (gone) return fail(kind, { permanent: true, failureType: 'NodeNotFound', message: 'gone' });
  const cmd = n.lastCommand.get(kind);
  switch (kind) {
    case 'checkEpisode': {
      const ep = cmd?.type === 'checkEpisode' ? cmd.episode : '';
      const truth = n.handled.has(ep) ? 'handled' : 'new';
      if (pick % 10 === 9) return fail(kind, { permanent: false, message: 'api down' });
      const verdict = pickOf([truth, truth, truth, 'unreadable'] as const, pick);
      if (verdict === 'handled') n.track.saidHandled.add(ep);
      return ok(kind, { verdict });
    }
    case 'restartPods':
      return pick % 5 === 4
        ? fail(kind, { permanent: true, failureType: 'RestartDeadlineExceeded', message: 'x' })
        : ok(kind, { restarted: 1 });
    case 'quarantine': {
      const ep = cmd?.type === 'quarantine' ? cmd.episode : '';
      if (n.handled.has(ep)) {
        n.track.saidHandled.add(ep);
        return ok(kind, { kind: 'duplicate-episode' });
      }
      const choice = pick % 10;
      if (choice === 8)
        return ok(kind, {
          kind: 'blocked',
          verdict: { allowed: false, reason: 'breaker-open', detail: 'open' },
        });
      if (choice === 9)
        return fail(kind, { permanent: true, failureType: 'InvalidAnnotation', message: 'x' });
      n.quarantined = true;
      return ok(kind, {
        kind: 'quarantined',
        gpuCount: pickOf([8, 4, null], pick),
        preexistingCordon: pick % 7 === 0,
        recentFailures: pick % 3 === 0 ? 12 : 1,
        episodes: choice === 7 ? 'unreadable' : 'new',
        hold: n.hold,
      });
    }
    case 'triage':
      return pickOf<MachineEvent>(
        [
          ok(kind, { evidence: {} }),
          ok(kind, { evidence: { gpus: [{ index: 0 }, { index: 1 }, { index: 2 }, { index: 3 }] } }),
          ok(kind, { evidence: { gpus: [{ index: 0, 'remapped_rows.failure': 'Yes' }] } }),
          fail(kind, { permanent: false, message: 'timeout', unreachable: true }),
        ],
        pick,
      );
    case 'requestSlot':
      return w.budget === null ? randomAdmission(pick) : budgetAdmission(w, n, pick);
    case 'checkCapacity':
      return pickOf([fits, fits, noFit, fail(kind, { permanent: false, message: 'x' })], pick);
    case 'drain':
      return pickOf(
        [
          drained,
          drained,
          drained,
          fail(kind, { permanent: true, failureType: 'DrainRefused', message: 'x' }),
          fail(kind, { permanent: true, failureType: 'DrainDeadlineExceeded', message: 'x' }),
          fail(kind, { permanent: false, message: 'x' }),
        ],
        pick,
      );
    case 'resetGpu': {
      const gpu = cmd?.type === 'resetGpu' ? cmd.gpu : 0;
      return pickOf(
        [
          ok(kind, { gpu }),
          ok(kind, { gpu }),
          fail(kind, { permanent: true, failureType: 'GpuBusy', message: 'x' }),
        ],
        pick,
      );
    }
    case 'readBootId':
      return pick % 6 === 5
        ? fail(kind, { permanent: true, failureType: 'BootIdUnknown', message: 'x' })
        : ok(kind, { bootId: `boot-${n.boot}` });
    case 'reboot': {
      if (pick % 4 === 3)
        return fail(kind, { permanent: true, failureType: 'RebootUnsupported', message: 'x' });
      // The agent: reboots only when the node still runs the boot the workflow recorded.
      const before = cmd?.type === 'reboot' ? cmd.bootIdBefore : null;
      if (before !== `boot-${n.boot}`) return ok(kind, { alreadyRebooted: true });
      // The agent lost with its attempt: the reboot may or may not have happened.
      if (pick % 4 === 2) {
        if (pick % 8 === 6) n.boot++;
        return fail(kind, { permanent: false, message: 'heartbeat timeout' });
      }
      // Sometimes the node never comes back (its boot ID stays, as a powered-off node's does).
      if (pick % 5 !== 4) n.boot++;
      return ok(kind, { alreadyRebooted: false });
    }
    case 'awaitBoot': {
      const before = cmd?.type === 'awaitBoot' ? cmd.bootIdBefore : '';
      if (`boot-${n.boot}` === before || pick % 7 === 6)
        return fail(kind, { permanent: true, failureType: 'RebootDeadlineExceeded', message: 'x' });
      n.track.rebootUnverified = false;
      return ok(kind, { bootId: `boot-${n.boot}` });
    }
    case 'validate': {
      const outcome = pickOf(
        [
          passed,
          passed,
          ok(kind, { diag: { passed: false, runtimeError: null, errors: [] } }),
          fail(kind, { permanent: false, message: 'x', unreachable: true }),
        ],
        pick,
      );
      if (outcome === passed) n.track.validated = true;
      return outcome;
    }
    case 'release': {
      const choice = pick % 4;
      if (choice === 3) return fail(kind, { permanent: true, failureType: 'NotOwner', message: 'x' });
      n.quarantined = false;
      return ok(kind, { leftCordoned: choice === 2 });
    }
  }
}

function randomAdmission(pick: number): MachineEvent {
  const admissions: Admission[] = [
    { admitted: true, escalateTo: null, detail: 'ok' },
    { admitted: true, escalateTo: 'replace-hardware', detail: 'remediated 2 times' },
    { admitted: false, reason: 'max-concurrent', detail: 'busy', ahead: 2 },
    { admitted: false, reason: 'paused', detail: 'paused' },
  ];
  return pick % 9 === 8
    ? fail('requestSlot', { permanent: false, message: 'budget unreachable' })
    : ok('requestSlot', { admission: pickOf(admissions, pick) });
}

/** The fleet budget workflow's acquireDrainSlot handler, over its pure reducer. */
function budgetAdmission(w: World, n: NodeWorld, pick: number): MachineEvent {
  const healthy = w.nodes.filter((x) => !x.quarantined).map((x) => x.name);
  let state: FleetState = { ...w.budget!, gpuNodeCount: w.nodes.length, healthyNodes: healthy };
  const admission = admitDrain(state, { node: n.name, remediationTimestamps: n.remediations }, w.now);
  if (admission.admitted) state = acquireSlot(state, n.name);
  else if (QUEUEING_REFUSALS.has(admission.reason)) state = enqueue(state, n.name);
  w.budget = state;
  // The update went through but its answer was lost: the budget holds a slot the run does not know of.
  if (pick % 9 === 8) return fail('requestSlot', { permanent: false, message: 'answer lost' });
  return ok('requestSlot', { admission });
}

const DISRUPTIVE = new Set([
  'drain',
  'resetGpu',
  'reboot',
  'validate',
  'release',
  'requestSlot',
  'checkCapacity',
  'triage',
  'quarantine',
]);

/** Feeds one event to a node's run (starting one for a firing alert) and applies its commands. */
function feed(w: World, n: NodeWorld, event: MachineEvent): void {
  if (n.run === null) {
    if (event.type !== 'alert' || event.alert.status !== 'firing') return;
    // Signal-with-start: a new run only when none is open (at most one run acts on a node).
    n.run = initialState(n.name, POLICY);
    n.track = newTracker();
    n.timers = [];
    n.lastCommand = new Map();
  }
  const before = n.run;
  if (event.type === 'alert' && event.alert.status === 'firing') n.track.fired.push(event.alert);
  const acceptedDecision =
    event.type === 'decision' && validateDecision(before, event.decision) === undefined
      ? event.decision
      : null;
  const { state, commands } = step(before, event, w.now);
  n.run = state;

  // One step at a time: at most one activity starts, and none while another runs.
  const started = commands.filter(isActivityCommand);
  assert.ok(started.length <= 1, `two activities at once: ${started.map((c) => c.type).join(', ')}`);
  const returned = event.type === 'result' && before.inFlight === event.activity;
  if (before.inFlight !== null && !returned)
    assert.equal(started.length, 0, 'an activity started over another');
  if (event.type === 'result' && !returned) assert.equal(state, before, 'a stale result changed the state');

  if (acceptedDecision !== null) {
    if (acceptedDecision.action === 'reject') {
      n.track.rejected = true;
      w.ends.push('rejected');
    }
    // Only an operator's release or mark-repaired lifts a reject.
    if (acceptedDecision.action === 'release') {
      n.track.operatorRelease = true;
      n.track.rejected = false;
    }
    if (acceptedDecision.action === 'markRepaired') {
      n.track.rebootUnverified = false;
      n.track.validated = false;
      n.track.operatorRelease = false;
      n.track.rejected = false;
    }
  }

  for (const c of commands) {
    // A reject is final for the run: nothing that drains, repairs or releases follows it.
    if (n.track.rejected) assert.ok(!DISRUPTIVE.has(c.type), `${c.type} after a reject`);
    switch (c.type) {
      case 'reboot':
        // The boot it replaces is recorded before the reboot is asked for.
        assert.ok(
          c.bootIdBefore !== null && /^boot-\d+$/.test(c.bootIdBefore),
          'a reboot without its boot ID',
        );
        n.track.rebootUnverified = true;
        n.lastCommand.set(c.type, c);
        n.track.validated = false;
        n.track.operatorRelease = false;
        assert.equal(n.hold, null, `${c.type} on a node held by a reject`);
        break;
      case 'resetGpu':
        n.track.validated = false;
        n.track.operatorRelease = false;
        assert.equal(n.hold, null, `${c.type} on a node held by a reject`);
        break;
      case 'validate':
        // A reboot is verified by a new boot before its validation (or an operator says it is done).
        assert.equal(n.track.rebootUnverified, false, 'validation of a reboot never seen to happen');
        n.lastCommand.set(c.type, c);
        break;
      case 'awaitBoot': {
        const r = n.lastCommand.get('reboot');
        assert.equal(
          c.bootIdBefore,
          r?.type === 'reboot' ? r.bootIdBefore : undefined,
          'awaits another boot',
        );
        assert.equal(c.deadline, w.now + POLICY.rebootDeadlineMs);
        n.lastCommand.set(c.type, c);
        break;
      }
      case 'drain':
        w.drains++;
        assert.equal(n.hold, null, 'drain on a node held by a reject');
        if (w.budget !== null) {
          assert.ok(w.budget.draining.includes(n.name), `${n.name} drains without a slot`);
        }
        break;
      case 'release':
        // Never released without a passed validation after the last repair, or an operator's release.
        assert.ok(n.track.validated || n.track.operatorRelease, 'release without validation');
        // A reject sticks to the node until an operator clears it.
        assert.equal(n.hold, null, 'release of a node held by a reject');
        break;
      case 'releaseSlot':
        if (w.budget !== null) {
          w.budget = releaseSlot(w.budget, n.name);
          wake(w);
        }
        break;
      case 'recordEpisodes':
        for (const e of c.episodes) n.handled.add(e);
        break;
      case 'recordRemediation':
        n.remediations.push(w.now);
        break;
      case 'holdNode':
        n.hold = { by: c.by, reason: c.reason };
        break;
      case 'clearHold':
        n.hold = null;
        break;
      case 'startTimer':
        n.timers.push(c.id);
        break;
      case 'continueAsNew':
        // A new run of the same workflow: the snapshot through JSON, then resumed.
        n.run = JSON.parse(JSON.stringify(c.state)) as RemediationState;
        n.timers = [];
        feed(w, n, { type: 'resumed' });
        return;
      case 'finish':
        onFinish(w, n, c.outcome);
        // At most one run acts on a node: an ended run returns nothing more, whatever it is fed.
        for (const late of [{ type: 'slot-free' }, { type: 'resumed' }, decide('release'), drained] as const)
          assert.deepEqual(step(state, late, w.now).commands, [], `${late.type} after the end`);
        return;
      default:
        if (isActivityCommand(c)) n.lastCommand.set(c.type, c);
    }
  }
  checkState(w, n);
}

/** The budget signals the first queued nodes when a slot frees (the budget workflow's wakeNext). */
function wake(w: World): void {
  for (const name of nextInQueue(w.budget!)) {
    const n = w.nodes.find((x) => x.name === name)!;
    if (n.run === null) w.budget = dequeue(w.budget!, name);
    else if (n.run.stage.name === 'waiting-for-budget') feed(w, n, { type: 'slot-free' });
  }
}

function maxFiring(t: Tracker): RemediationClass | null {
  const open = t.fired.filter((a) => !t.saidHandled.has(a.episodeKey));
  return open.reduce<RemediationClass | null>((m, a) => {
    const c = classifyAlert(a, POLICY).class;
    return m === null || severityOf(c) > severityOf(m) ? c : m;
  }, null);
}

function onFinish(w: World, n: NodeWorld, outcome: RemediationOutcome): void {
  const t = n.track;
  w.ends.push(outcome);
  const highest = maxFiring(t);
  // A higher class is never lost: a light end only when no open episode needed quarantine.
  if (outcome === 'ignored' || outcome === 'pods-restarted' || outcome === 'duplicate-episode')
    assert.ok(highest === null || !requiresQuarantine(highest), `${outcome} with an open ${highest} alert`);
  if (outcome === 'returned-to-service') assert.ok(t.validated, 'returned to service without validation');
  // Every end but a release leaves the node quarantined only with a visible reason (the reject).
  if (n.quarantined)
    assert.ok(
      (outcome !== 'returned-to-service' && outcome !== 'released-by-operator' && n.hold !== null) ||
        outcome === 'node-gone',
      `${outcome} leaves ${n.name} quarantined without a reason`,
    );
  if (w.budget !== null && outcome !== 'node-gone')
    assert.ok(!w.budget.draining.includes(n.name), `${outcome} leaked the drain slot of ${n.name}`);
  if (outcome === 'node-gone') n.quarantined = false;
  n.run = null;
}

function checkState(w: World, n: NodeWorld): void {
  const s = n.run;
  if (s === null || s.stage.name === 'done') return;
  const v = view(s);
  const highest = maxFiring(n.track);
  if (highest !== null && s.class !== null)
    assert.ok(severityOf(s.class) >= severityOf(highest), `class ${s.class} below a fired ${highest}`);
  if (s.quarantined || s.stage.name === 'held') assert.ok(v.quarantineReason, 'quarantined without a reason');
  // A reject sticks to the node: the run holds it, and the mark on the node outlives the run.
  if (n.track.rejected) {
    assert.equal(
      s.stage.name === 'held' || s.pending?.action === 'reject',
      true,
      `rejected, yet ${s.stage.name}`,
    );
    if (s.pending === null) assert.ok(n.hold !== null, 'a reject left no mark on the node');
  }
  // Never stuck: between steps the run waits for an alert, a timer it started or an operator.
  if (s.inFlight === null) {
    const st = s.stage;
    const timerId =
      st.name === 'settling'
        ? st.timer
        : st.name === 'waiting-for-budget' || st.name === 'waiting-for-capacity'
          ? st.timer
          : st.name === 'awaiting-approval' || st.name === 'held'
            ? st.wait.timer
            : undefined;
    assert.ok(st.name === 'received' || timerId !== undefined, `stuck in ${st.name}`);
    if (timerId !== undefined)
      assert.ok(timerId !== null && n.timers.includes(timerId), `no timer for ${st.name}`);
    if (st.name === 'held' || st.name === 'awaiting-approval')
      assert.ok(actionsAllowed(s).length > 0, `no way out of ${st.name}`);
  } else {
    assert.equal(
      s.stage.name === 'held' || s.stage.name === 'awaiting-approval',
      false,
      'a step runs during an operator wait',
    );
  }
  assert.ok(JSON.stringify(s).length < 40_000, 'the state grows without bound');
  if (w.budget !== null) {
    // Drains never exceed the budget: those running hold slots, and no more than it allows.
    const draining = w.nodes.filter((x) => x.run?.inFlight === 'drain').map((x) => x.name);
    assert.ok(draining.length <= w.budget.config.maxConcurrentDrains, `${draining.length} drains at once`);
    for (const d of draining) assert.ok(w.budget.draining.includes(d), `${d} drains without a slot`);
    // A slot is held from its grant to the end of the drain, by a run that knows it, and no longer:
    // drain concurrency is not out-of-service time.
    for (const holder of w.budget.draining) {
      const h = w.nodes.find((x) => x.name === holder)!;
      assert.ok(h.run?.slotHeld === true, `${holder} holds a slot its run does not know of`);
      const stage = h.run.stage.name;
      assert.ok(
        stage === 'waiting-for-budget' || stage === 'waiting-for-capacity' || stage === 'draining',
        `${holder} holds a drain slot in ${stage}`,
      );
    }
  }
}

function play(w: World, acts: readonly { act: Act; dt: number }[]): void {
  for (const { act, dt } of acts) {
    w.now += dt;
    const n = w.nodes[act.node % w.nodes.length]!;
    switch (act.k) {
      case 'alert': {
        const code = CODES[act.code]!;
        feed(w, n, {
          type: 'alert',
          alert: alert(code, {
            episode: `${EPISODES[act.ep]!}-${String(code)}`,
            status: act.resolved ? 'resolved' : 'firing',
            ...(act.gpu >= 0 && { gpu: act.gpu }),
            pods: ['web-0'],
          }),
        });
        break;
      }
      case 'answer':
        if (n.run?.inFlight) feed(w, n, answerFor(w, n, n.run.inFlight, act.pick));
        // A result nobody waits for (a duplicate delivery): ignored, no effect on the world.
        else if (n.run) feed(w, n, pickOf([drained, passed, released], act.pick));
        break;
      case 'decide':
        if (n.run) feed(w, n, decide(ACTIONS[act.action]!, act.nobody ? '' : 'op', 'because'));
        break;
      case 'timer':
        if (n.run && n.timers.length > 0)
          feed(w, n, { type: 'timer', id: pickOf(n.timers.slice(-3), act.pick) });
        break;
      case 'slot-free':
        if (n.run) feed(w, n, { type: 'slot-free' });
        break;
      case 'can':
        if (n.run) feed(w, n, { type: 'continue-as-new-suggested' });
        break;
    }
  }
}

describe('remediation machine: properties over random event sequences', () => {
  it('one node: released only after validation, a reject is final and sticks, a higher class is never lost, every end leaves a reason', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(actArb(1), { minLength: 1, maxLength: 100, size: 'max' }), (acts) => {
        const w = newWorld(1, null);
        play(w, acts);
        for (const e of w.ends) seen.add(e);
      }),
      { numRuns: 1000 },
    );
    // Not vacuous: the random runs reach every end the invariants are about.
    for (const end of [
      'returned-to-service',
      'released-by-operator',
      'rejected',
      'duplicate-episode',
      'pods-restarted',
    ])
      assert.ok(seen.has(end), `no run reached ${end}`);
  });

  it('several nodes with the fleet budget’s reducer: drains never exceed the budget, one run acts on a node', () => {
    const seen = new Set<string>();
    const budget = fc.record({
      drains: fc.integer({ min: 1, max: 2 }),
      nodes: fc.integer({ min: 2, max: 5 }),
      minHealthy: fc.constantFrom(0, 0.34, 0.51),
    });
    fc.assert(
      fc.property(
        budget,
        fc.array(actArb(5), { minLength: 1, maxLength: 200, size: 'max' }),
        ({ drains, nodes, minHealthy }, acts) => {
          const config = {
            ...DEFAULT_FLEET_BUDGET,
            maxConcurrentDrains: drains,
            minHealthyFraction: minHealthy,
            breakerThreshold: 1,
          };
          const w = newWorld(nodes, { ...initialFleetState(nodes, [], config), queue: [] });
          play(w, acts);
          for (const e of w.ends) seen.add(e);
          if (w.drains > 0) seen.add('drained');
        },
      ),
      { numRuns: 400 },
    );
    // Not vacuous: the random runs reach the ends and the drains the invariants are about.
    for (const end of ['returned-to-service', 'rejected', 'released-by-operator', 'drained'])
      assert.ok(seen.has(end), `no run reached ${end}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Issue #14: a reboot is verified by the node's boot ID

describe('remediation machine: a reboot is verified by a new boot ID', () => {
  const readBoot = ok('readBootId', { bootId: 'boot-1' });
  const rebooted = ok('reboot', { alreadyRebooted: false });
  const deadlineExceeded = fail('awaitBoot', {
    permanent: true,
    failureType: 'RebootDeadlineExceeded',
    message: 'node gpu-node-7 showed no new boot',
  });

  it('records the boot ID before the reboot, then waits for another one before validating', () => {
    const run = Run.awaitingReboot();
    assert.deepEqual(run.feed(decide('approve')).filter(isActivityCommand), [{ type: 'readBootId' }]);
    assert.deepEqual(run.feed(readBoot), [{ type: 'reboot', bootIdBefore: 'boot-1' }]);
    const stage = run.state.stage;
    assert.equal(stage.name === 'repairing' && stage.bootIdBefore, 'boot-1');
    const waiting = run.feed(rebooted);
    assert.deepEqual(waiting, [
      { type: 'awaitBoot', bootIdBefore: 'boot-1', deadline: run.now + POLICY.rebootDeadlineMs },
    ]);
    assert.equal(run.phase, 'repairing');
    assert.match(view(run.state).waitingFor ?? '', /another boot ID than boot-1, until 2026-03-01T12:/);
    assert.deepEqual(run.types(run.feed(ok('awaitBoot', { bootId: 'boot-2' }))), ['validate']);
    assert.match(run.state.reasons.join('\n'), /back from its reboot \(boot boot-2\)/);
  });

  it('an agent that finds the node already rebooted reboots nothing, and the wait still checks the boot', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), readBoot);
    assert.deepEqual(run.types(run.feed(ok('reboot', { alreadyRebooted: true }))), ['awaitBoot']);
    assert.match(run.state.reasons.join('\n'), /already left boot boot-1: not rebooted again/);
  });

  it('a node that never comes back is held quarantined for an operator, never released or closed', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), readBoot, rebooted);
    const after = run.feed(deadlineExceeded);
    assert.deepEqual(run.types(after), ['startTimer', 'notify']);
    assert.deepEqual(notified(after), ['needs-operator']);
    assert.equal(finishOf(after), undefined);
    assert.equal(run.phase, 'quarantined');
    assert.match(
      view(run.state).quarantineReason ?? '',
      /did not come back with a new boot ID after its reboot/,
    );
    assert.deepEqual([...actionsAllowed(run.state)], ['retry', 'markRepaired', 'reject', 'release']);
    assert.deepEqual(ran(run, 'validate', 'release'), []);
  });

  it('retry reboots with the boot ID recorded first (the agent reboots only if the node still runs it)', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), readBoot, rebooted, deadlineExceeded);
    const retried = run.feed(decide('retry', 'bob'));
    assert.deepEqual(retried.filter(isActivityCommand), [{ type: 'reboot', bootIdBefore: 'boot-1' }]);
    assert.deepEqual(run.types(run.feed(ok('reboot', { alreadyRebooted: true }))), ['awaitBoot']);
    assert.deepEqual(run.types(run.feed(ok('awaitBoot', { bootId: 'boot-2' }))), ['validate']);
  });

  it('a boot ID that cannot be read sends the reboot to an operator without rebooting', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'));
    run.feed(fail('readBootId', { permanent: true, failureType: 'BootIdUnknown', message: 'no boot ID' }));
    assert.equal(run.phase, 'awaiting-approval');
    assert.match(view(run.state).waitingFor ?? '', /reboot the node out of band/);
    assert.deepEqual(ran(run, 'reboot'), []);
  });

  it('a reject taken while the boot ID is read wins: nothing is rebooted', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), decide('reject', 'bob'));
    assert.deepEqual(run.types(run.feed(readBoot)), ['holdNode', 'startTimer', 'notify']);
    assert.deepEqual(ran(run, 'reboot'), []);
  });

  it('runs recorded before boots were checked (no boot ID) validate right after the reboot', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'));
    assert.deepEqual(run.feed(ok('readBootId', { bootId: null })), [{ type: 'reboot', bootIdBefore: null }]);
    assert.deepEqual(run.types(run.feed(rebooted)), ['validate']);
  });

  it('property: the boot awaited is the one recorded before the reboot, and the deadline is the policy one', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.boolean(),
        fc.integer({ min: 1000, max: 24 * HOUR }),
        (bootId, already, deadlineMs) => {
          const run = new Run({ ...POLICY, rebootDeadlineMs: deadlineMs });
          run.feed(
            { type: 'alert', alert: alert(79, { gpu: 3 }) },
            quarantined(),
            ok('triage', { evidence: {} }),
          );
          run.feed(admitted, fits, drained, decide('approve'), ok('readBootId', { bootId }));
          const [wait] = run.feed(ok('reboot', { alreadyRebooted: already }));
          assert.deepEqual(wait, { type: 'awaitBoot', bootIdBefore: bootId, deadline: run.now + deadlineMs });
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('remediation machine: an agent lost during its reboot', () => {
  it('a reboot attempt lost without a permanent answer waits for a new boot (the reboot may have happened)', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), ok('readBootId', { bootId: 'boot-1' }));
    const after = run.feed(fail('reboot', { permanent: false, message: 'timed out', unreachable: true }));
    assert.deepEqual(after.filter(isActivityCommand), [
      { type: 'awaitBoot', bootIdBefore: 'boot-1', deadline: run.now + POLICY.rebootDeadlineMs },
    ]);
    assert.match(
      run.state.reasons.join('\n'),
      /did not answer \(node agent unreachable\): waiting for a new boot/,
    );
  });

  it('a permanent refusal (RebootUnsupported) goes to an operator without waiting', () => {
    const run = Run.awaitingReboot();
    run.feed(decide('approve'), ok('readBootId', { bootId: 'boot-1' }));
    run.feed(fail('reboot', { permanent: true, failureType: 'RebootUnsupported', message: 'no' }));
    assert.equal(run.phase, 'awaiting-approval');
    assert.deepEqual(ran(run, 'awaitBoot'), []);
  });
});
