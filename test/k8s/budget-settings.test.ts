import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BUDGET_SETTINGS_KEY,
  formatBudgetSettings,
  parseBudgetSettings,
  type BudgetSettings,
} from '../../src/k8s/budget-settings.js';

describe('the fleet budget settings object', () => {
  it('round-trips a pause and an open breaker', () => {
    const settings: BudgetSettings = {
      paused: { by: 'alice', reason: 'driver rollout', at: '2026-12-02T10:00:00.000Z' },
      breaker: { state: 'open', openedAt: 1_764_669_600_000, reason: '3 of 4 GPU nodes failed' },
    };
    assert.deepEqual(parseBudgetSettings(formatBudgetSettings(settings)), { kind: 'settings', settings });
  });

  it('is absent without the ConfigMap or its key', () => {
    assert.deepEqual(parseBudgetSettings(undefined), { kind: 'absent' });
    assert.deepEqual(parseBudgetSettings({ other: 'x' }), { kind: 'absent' });
  });

  it('names what is wrong in a record it cannot read', () => {
    const bad = (raw: string) => {
      const parsed = parseBudgetSettings({ [BUDGET_SETTINGS_KEY]: raw });
      assert.equal(parsed.kind, 'invalid');
      return parsed.kind === 'invalid' ? parsed.error : '';
    };
    assert.match(bad('{'), /settings\.json is not JSON/);
    assert.match(bad('{"version":2,"paused":null,"breaker":{"state":"closed"}}'), /version/);
    assert.match(
      bad('{"version":1,"paused":{"by":"","at":"2026-12-02T10:00:00Z"},"breaker":{"state":"closed"}}'),
      /paused\.by/,
    );
    assert.match(bad('{"version":1,"paused":null,"breaker":{"state":"half"}}'), /breaker/);
  });
});
