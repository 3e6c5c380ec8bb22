import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  REMEDIATION_CLASSES,
  compareClasses,
  describeClass,
  escalate,
  isRemediationClass,
  maxClass,
  requiresOperator,
  requiresQuarantine,
  severityOf,
} from '../../src/domain/remediation-class.js';
import type { RemediationClass } from '../../src/domain/remediation-class.js';

describe('remediation classes', () => {
  it('are ordered by severity, needs-operator between reboot-node and replace-hardware', () => {
    assert.deepEqual(REMEDIATION_CLASSES, [
      'ignore',
      'restart-app',
      'reset-gpu',
      'reboot-node',
      'needs-operator',
      'replace-hardware',
    ]);
    REMEDIATION_CLASSES.forEach((cls, i) => assert.equal(severityOf(cls), i));
  });

  const maxCases: [RemediationClass, RemediationClass, RemediationClass][] = [
    ['ignore', 'ignore', 'ignore'],
    ['ignore', 'restart-app', 'restart-app'],
    ['restart-app', 'ignore', 'restart-app'],
    ['reset-gpu', 'restart-app', 'reset-gpu'],
    ['reset-gpu', 'reboot-node', 'reboot-node'],
    ['reboot-node', 'needs-operator', 'needs-operator'],
    ['needs-operator', 'reboot-node', 'needs-operator'],
    ['needs-operator', 'reset-gpu', 'needs-operator'],
    ['needs-operator', 'ignore', 'needs-operator'],
    ['needs-operator', 'replace-hardware', 'replace-hardware'],
    ['replace-hardware', 'needs-operator', 'replace-hardware'],
    ['replace-hardware', 'ignore', 'replace-hardware'],
    ['replace-hardware', 'reboot-node', 'replace-hardware'],
  ];
  for (const [a, b, want] of maxCases) {
    it(`maxClass(${a}, ${b}) is ${want}`, () => assert.equal(maxClass(a, b), want));
  }

  it('maxClass is commutative and never lower than either argument, for every pair', () => {
    for (const a of REMEDIATION_CLASSES) {
      for (const b of REMEDIATION_CLASSES) {
        const m = maxClass(a, b);
        assert.equal(m, maxClass(b, a));
        assert.ok(severityOf(m) >= severityOf(a) && severityOf(m) >= severityOf(b));
        assert.ok(m === a || m === b);
      }
    }
  });

  it('escalate never goes below the current class', () => {
    for (const current of REMEDIATION_CLASSES) {
      assert.equal(escalate(current), current);
      assert.equal(escalate(current, 'ignore', 'ignore'), current);
      assert.equal(escalate(current, 'replace-hardware'), 'replace-hardware');
    }
    assert.equal(escalate('restart-app', 'reset-gpu', 'ignore', 'reboot-node'), 'reboot-node');
    assert.equal(escalate('needs-operator', 'reset-gpu', 'reboot-node'), 'needs-operator');
  });

  it('compareClasses sorts by severity', () => {
    const shuffled: RemediationClass[] = [
      'replace-hardware',
      'ignore',
      'needs-operator',
      'reset-gpu',
      'restart-app',
    ];
    assert.deepEqual([...shuffled].sort(compareClasses), [
      'ignore',
      'restart-app',
      'reset-gpu',
      'needs-operator',
      'replace-hardware',
    ]);
  });

  const guards: [unknown, boolean][] = [
    ['ignore', true],
    ['needs-operator', true],
    ['replace-hardware', true],
    ['reset', false],
    ['IGNORE', false],
    ['', false],
    [undefined, false],
    [3, false],
    ['toString', false],
    ['__proto__', false],
  ];
  for (const [value, want] of guards) {
    it(`isRemediationClass(${JSON.stringify(value)}) is ${want}`, () =>
      assert.equal(isRemediationClass(value), want));
  }

  const node: [RemediationClass, boolean, boolean][] = [
    ['ignore', false, false],
    ['restart-app', false, false],
    ['reset-gpu', true, false],
    ['reboot-node', true, true],
    ['needs-operator', true, true],
    ['replace-hardware', true, true],
  ];
  for (const [cls, quarantine, operator] of node) {
    it(`${cls}: quarantine ${quarantine}, operator ${operator}`, () => {
      assert.equal(requiresQuarantine(cls), quarantine);
      assert.equal(requiresOperator(cls), operator);
      assert.ok(describeClass(cls).length > 0);
    });
  }
});
