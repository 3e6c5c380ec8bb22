import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, isBreakerFailure, type AttemptOutcome } from '../../src/gateway/classify.js';

const OOM = { status: 500, bodyPattern: /out of memory/i };

function response(status: number, body = '{}'): AttemptOutcome {
  return { kind: 'response', status, headers: {}, body: Buffer.from(body) };
}

describe('classify: each error class has its action', () => {
  const table: [string, AttemptOutcome, string, boolean][] = [
    ['200', response(200), 'deliver', false],
    ['400', response(400), 'deliver', false],
    ['404', response(404), 'deliver', false],
    ['429', response(429), 'rate-limited', false],
    ['503 Loading model', response(503, '{"error":{"message":"Loading model"}}'), 'not-ready', false],
    ['503 other', response(503, 'busy'), 'retry', true],
    ['500', response(500), 'retry', true],
    ['500 out of memory', response(500, '{"error":{"message":"CUDA error: out of memory"}}'), 'oom', true],
    ['507 out of memory (not the configured status)', response(507, 'out of memory'), 'retry', true],
    ['refused', { kind: 'connection-error', code: 'ECONNREFUSED', error: 'x' }, 'retry', true],
    ['reset', { kind: 'connection-error', code: 'ECONNRESET', error: 'x' }, 'retry', true],
    ['ttfb timeout', { kind: 'timeout', phase: 'ttfb' }, 'retry', true],
    [
      'stream broken',
      { kind: 'stream-broken', error: 'x', progress: { events: 1, tokens: 1, text: 'a' } },
      'stream-broken',
      true,
    ],
    ['streamed', { kind: 'streamed' }, 'done', false],
    ['client aborted', { kind: 'client-aborted' }, 'done', false],
  ];
  for (const [name, outcome, action, failure] of table) {
    it(`${name}: ${action}, ${failure ? 'a' : 'no'} breaker failure`, () => {
      assert.equal(classify(outcome, OOM).kind, action);
      assert.equal(isBreakerFailure(outcome, OOM), failure);
    });
  }

  it('refused and reset connections eject; timeouts and 5xx do not', () => {
    const eject = (o: AttemptOutcome) => {
      const a = classify(o, OOM);
      return a.kind === 'retry' && a.eject;
    };
    assert.equal(eject({ kind: 'connection-error', code: 'ECONNREFUSED', error: '' }), true);
    assert.equal(eject({ kind: 'connection-error', code: 'UND_ERR_SOCKET', error: '' }), true);
    assert.equal(eject({ kind: 'timeout', phase: 'ttfb' }), false);
    assert.equal(eject(response(500)), false);
  });
});
