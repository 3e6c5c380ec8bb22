import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  escapeMrkdwn,
  jsonNotification,
  slackNotification,
  workflowUiUrl,
  type NotificationInput,
} from '../../src/notify/message.js';

const base: NotificationInput = {
  id: 'remediation/c1/gpu-7/run-1/1',
  kind: 'needs-operator',
  cluster: 'c1',
  node: 'gpu-7',
  workflowId: 'remediation/c1/gpu-7',
  runId: 'run-1',
  phase: 'awaiting-approval',
  class: 'reboot-node',
  message: 'gpu-7 needs an operator: approve a reboot of the node',
  reminder: 0,
  escalated: false,
  at: '2026-11-27T01:00:00.000Z',
};

describe('notification messages', () => {
  it('links the workflow run in the Temporal UI, or nothing when the UI is unknown', () => {
    assert.equal(
      workflowUiUrl('http://127.0.0.1:8233/', 'default', 'remediation/c1/gpu-7', 'run-1'),
      'http://127.0.0.1:8233/namespaces/default/workflows/remediation%2Fc1%2Fgpu-7/run-1/history',
    );
    assert.equal(
      workflowUiUrl('https://temporal.example.com', 'prod ns', 'w'),
      'https://temporal.example.com/namespaces/prod%20ns/workflows/w',
    );
    assert.equal(workflowUiUrl(undefined, 'default', 'w', 'r'), null);
  });

  it('JSON: every documented field, versioned', () => {
    const body = jsonNotification(base, 'http://ui/x');
    assert.deepEqual(Object.keys(body).sort(), [
      'at',
      'class',
      'cluster',
      'escalated',
      'id',
      'kind',
      'message',
      'node',
      'phase',
      'reminder',
      'runId',
      'url',
      'version',
      'workflowId',
    ]);
    assert.equal(body.version, 1);
    assert.equal(body.url, 'http://ui/x');
    assert.equal(jsonNotification(base, null).url, null);
  });

  const slack: Array<[string, Partial<NotificationInput>, RegExp[]]> = [
    ['needs-operator', {}, [/needs an operator/, /phase \*awaiting-approval\* · class \*reboot-node\*/]],
    ['reminder', { kind: 'reminder', reminder: 3 }, [/still waiting/, /reminder 3/]],
    ['escalated', { kind: 'escalated', reminder: 16, escalated: true }, [/ESCALATED: still waiting/]],
    [
      'an escalated reminder',
      { kind: 'reminder', reminder: 17, escalated: true },
      [/still waiting for an operator \(ESCALATED\)/],
    ],
    [
      'breaker-tripped',
      { kind: 'breaker-tripped', phase: 'done', class: null },
      [/circuit breaker/, /phase \*done\*\n/],
    ],
    [
      'returned-to-service',
      { kind: 'returned-to-service', phase: 'releasing' },
      [/:white_check_mark: returned to service/],
    ],
  ];
  for (const [what, change, patterns] of slack) {
    it(`Slack text for ${what}`, () => {
      const { text } = slackNotification({ ...base, ...change }, null);
      assert.match(text, /^\*fleetmedic\* · node `gpu-7` \(cluster `c1`\)/);
      for (const p of patterns) assert.match(text, p);
      assert.match(text, /workflow `remediation\/c1\/gpu-7`$/);
    });
  }

  it('Slack: escapes mrkdwn control characters and uses the <url|label> link form', () => {
    assert.equal(escapeMrkdwn('a <b> & c'), 'a &lt;b&gt; &amp; c');
    const { text } = slackNotification(
      { ...base, message: 'pods <@here> & <!channel> do not fit' },
      'http://127.0.0.1:8233/namespaces/default/workflows/remediation%2Fc1%2Fgpu-7/run-1/history',
    );
    assert.match(text, /pods &lt;@here&gt; &amp; &lt;!channel&gt; do not fit/);
    assert.doesNotMatch(text, /<!channel>/);
    assert.match(
      text,
      /<http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/remediation%2Fc1%2Fgpu-7\/run-1\/history\|remediation\/c1\/gpu-7>$/,
    );
  });
});
