import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadNotifyConfig, parseNotifyConfig } from '../../src/notify/config.js';
import { NOTIFICATION_KINDS } from '../../src/notify/message.js';
import { ConfigError } from '../../src/errors.js';

describe('notification config', () => {
  it('fills in names, every kind and the default timeout', () => {
    const config = parseNotifyConfig({
      sinks: [
        { type: 'slack', url: 'https://hooks.slack.com/services/T0/B0/x' },
        {
          name: 'pager',
          type: 'json',
          url: 'http://127.0.0.1:9/hook',
          headers: { Authorization: 'Bearer t' },
          events: ['escalated', 'breaker-tripped'],
          timeoutMs: 2000,
        },
      ],
    });
    assert.equal(config.sinks[0]!.name, 'slack-0');
    assert.deepEqual(config.sinks[0]!.events, NOTIFICATION_KINDS);
    assert.equal(config.sinks[0]!.timeoutMs, 10_000);
    assert.deepEqual(config.sinks[1]!.events, ['escalated', 'breaker-tripped']);
    assert.equal(config.sinks[1]!.headers.Authorization, 'Bearer t');
    assert.ok(Object.isFrozen(config.sinks[1]));
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['no sinks key', {}, /\(root\)|sinks: /],
    ['unknown type', { sinks: [{ type: 'email', url: 'http://x' }] }, /sinks\.0\.type/],
    ['not a URL', { sinks: [{ type: 'json', url: 'not a url' }] }, /sinks\.0\.url: an http\(s\) URL/],
    ['ftp URL', { sinks: [{ type: 'json', url: 'ftp://127.0.0.1/x' }] }, /sinks\.0\.url: an http\(s\) URL/],
    [
      'unknown event',
      { sinks: [{ type: 'slack', url: 'http://127.0.0.1/x', events: ['reminder', 'lunch'] }] },
      /sinks\.0\.events\.1/,
    ],
    [
      'empty events',
      { sinks: [{ type: 'slack', url: 'http://127.0.0.1/x', events: [] }] },
      /sinks\.0\.events/,
    ],
    [
      'bad header name',
      { sinks: [{ type: 'json', url: 'http://127.0.0.1/x', headers: { 'bad header': 'v' } }] },
      /sinks\.0\.headers/,
    ],
    [
      'unknown field',
      { sinks: [{ type: 'json', url: 'http://127.0.0.1/x', token: 'x' }] },
      /sinks\.0: .*token/,
    ],
    [
      'timeout too small',
      { sinks: [{ type: 'json', url: 'http://127.0.0.1/x', timeoutMs: 5 }] },
      /sinks\.0\.timeoutMs/,
    ],
    [
      'duplicate name',
      {
        sinks: [
          { name: 'a', type: 'json', url: 'http://127.0.0.1/x' },
          { name: 'a', type: 'slack', url: 'http://127.0.0.1/y' },
        ],
      },
      /sinks\.1\.name a is used twice/,
    ],
  ];
  for (const [what, doc, pattern] of bad) {
    it(`refuses ${what}, naming the field`, () => {
      assert.throws(
        () => parseNotifyConfig(doc, 'notify.yaml'),
        (err: unknown) =>
          err instanceof ConfigError && /notify\.yaml/.test(err.message) && pattern.test(err.message),
      );
    });
  }

  it('loads YAML files and names the file when it cannot', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-notify-'));
    try {
      const good = path.join(dir, 'good.yaml');
      await fs.writeFile(
        good,
        'sinks:\n  - type: slack\n    url: http://127.0.0.1:1/hook\n    events: [escalated]\n',
      );
      assert.deepEqual((await loadNotifyConfig(good)).sinks[0]!.events, ['escalated']);
      const broken = path.join(dir, 'broken.yaml');
      await fs.writeFile(broken, 'sinks: [\n');
      await assert.rejects(loadNotifyConfig(broken), /broken\.yaml is not valid YAML/);
      await assert.rejects(
        loadNotifyConfig(path.join(dir, 'missing.yaml')),
        /missing\.yaml could not be read/,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
