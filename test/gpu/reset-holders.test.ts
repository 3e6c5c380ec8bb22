import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { parseResetHolders } from '../../src/gpu/reset-holders.js';

describe('the agent’s reset holders file', () => {
  it('reads holders with their stop and start argv, defaulting the timeout', () => {
    const holders = parseResetHolders(
      {
        holders: [
          {
            name: 'nvidia-persistenced',
            stop: ['systemctl', 'stop', 'x'],
            start: ['systemctl', 'start', 'x'],
          },
        ],
      },
      'holders.yaml',
    );
    assert.deepEqual(holders, [
      {
        name: 'nvidia-persistenced',
        stop: ['systemctl', 'stop', 'x'],
        start: ['systemctl', 'start', 'x'],
        timeoutSeconds: 60,
      },
    ]);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    [
      'a command as one string (a shell line)',
      { holders: [{ name: 'a', stop: 'systemctl stop a', start: ['b'] }] },
      /holders\.0\.stop/,
    ],
    [
      'an empty argv',
      { holders: [{ name: 'a', stop: [], start: ['b'] }] },
      /holders\.0\.stop: must name a command/,
    ],
    ['an unknown key', { holders: [{ name: 'a', stop: ['a'], start: ['b'], shell: true }] }, /holders\.0/],
    [
      'a name twice',
      {
        holders: [
          { name: 'a', stop: ['a'], start: ['b'] },
          { name: 'a', stop: ['a'], start: ['b'] },
        ],
      },
      /holder a is named twice/,
    ],
  ];
  for (const [what, doc, message] of bad) {
    it(`refuses ${what}, naming the field`, () => {
      assert.throws(
        () => parseResetHolders(doc, 'holders.yaml'),
        (err: unknown) =>
          err instanceof ConfigError && /^holders\.yaml: /.test(err.message) && message.test(err.message),
      );
    });
  }
});
