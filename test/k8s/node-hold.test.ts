import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatHold, holdOf, parseHold, type NodeHold } from '../../src/k8s/node-hold.js';

const hold: NodeHold = {
  by: 'alice',
  reason: 'RMA 1234: GPU 3 off the bus twice',
  at: '2026-11-27T10:00:00.000Z',
  workflowId: 'remediation/lab/gpu-node-7',
  runId: '0195-run',
};

describe('parseHold', () => {
  it('reads an absent annotation as no hold', () => {
    assert.deepEqual(parseHold(undefined), { kind: 'absent' });
    assert.equal(holdOf(parseHold(undefined)), null);
  });

  it('reads back what formatHold wrote', () => {
    assert.deepEqual(parseHold(formatHold(hold)), { kind: 'ok', hold });
    assert.deepEqual(holdOf(parseHold(formatHold(hold))), { by: 'alice', reason: hold.reason });
  });

  it('formats stably, so the same hold is the same string', () => {
    assert.equal(formatHold({ ...hold }), formatHold(hold));
    assert.equal(
      formatHold(hold),
      '{"by":"alice","reason":"RMA 1234: GPU 3 off the bus twice","at":"2026-11-27T10:00:00.000Z",' +
        '"workflowId":"remediation/lab/gpu-node-7","runId":"0195-run"}',
    );
  });

  it('reads a hold written by hand with only who and why', () => {
    assert.deepEqual(parseHold('{"by":"bob","reason":"bad fan"}'), {
      kind: 'ok',
      hold: { by: 'bob', reason: 'bad fan', at: '', workflowId: '', runId: '' },
    });
  });

  for (const [name, raw, error] of [
    ['empty', '', /^not JSON/],
    ['not JSON', '{"by":', /^not JSON/],
    ['a string', '"alice"', /hold/],
    ['null', 'null', /hold/],
    ['without by', '{"reason":"RMA"}', /^by: /],
    ['with an empty reason', '{"by":"alice","reason":""}', /^reason: /],
    ['with a numeric runId', '{"by":"alice","reason":"RMA","runId":7}', /^runId: /],
  ] as const) {
    it(`fails closed on a hold ${name}: invalid, and read as held`, () => {
      const parsed = parseHold(raw);
      assert.equal(parsed.kind, 'invalid');
      assert.match(parsed.kind === 'invalid' ? parsed.error : '', error);
      assert.deepEqual(holdOf(parsed), { by: 'unknown', reason: 'hold annotation unreadable' });
    });
  }
});
