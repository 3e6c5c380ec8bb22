import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseNotifyConfig } from '../../src/notify/config.js';
import type { JsonNotification, NotificationInput } from '../../src/notify/message.js';
import { httpSink, Notifier, SinkError, type SendResult } from '../../src/notify/notifier.js';
import { startReceiver } from './receiver.js';

const n = (id: string, kind: NotificationInput['kind'] = 'needs-operator'): NotificationInput => ({
  id,
  kind,
  cluster: 'c1',
  node: 'gpu-7',
  workflowId: 'remediation/c1/gpu-7',
  runId: 'run-1',
  phase: 'awaiting-approval',
  class: 'reboot-node',
  message: 'gpu-7 needs an operator',
  reminder: 0,
  escalated: false,
  at: '2026-11-27T01:00:00.000Z',
});

describe('notifier against a local receiver', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  // /flaky fails its first answer with 503; /gone always 404; /slow answers after 2 s.
  before(async () => {
    receiver = await startReceiver({
      respond: (path, count) =>
        path.startsWith('/gone') ? 404 : path === '/flaky' && count === 1 ? 503 : 200,
      delayMs: (path) => (path === '/slow' ? 2000 : 0),
    });
  });
  after(() => receiver.close());

  function sinks(doc: unknown) {
    return parseNotifyConfig(doc).sinks.map(httpSink);
  }

  it('POSTs the JSON object and the Slack text, with the configured headers, to sinks that want the kind', async () => {
    const results: [string, SendResult][] = [];
    const notifier = new Notifier({
      sinks: sinks({
        sinks: [
          { name: 'j', type: 'json', url: `${receiver.url}/json`, headers: { Authorization: 'Bearer abc' } },
          { name: 's', type: 'slack', url: `${receiver.url}/slack` },
          { name: 'esc', type: 'slack', url: `${receiver.url}/esc`, events: ['escalated'] },
        ],
      }),
      uiUrl: 'http://127.0.0.1:8233',
      onResult: (sink, _kind, result) => results.push([sink, result]),
      log: () => {},
    });
    const delivery = await notifier.send(n('a/1'));
    assert.deepEqual([...delivery.delivered].sort(), ['j', 's']);
    assert.deepEqual(delivery.failed, []);
    const [json] = receiver.bodies<JsonNotification>('/json');
    assert.equal(json!.kind, 'needs-operator');
    assert.equal(json!.node, 'gpu-7');
    assert.equal(
      json!.url,
      'http://127.0.0.1:8233/namespaces/default/workflows/remediation%2Fc1%2Fgpu-7/run-1/history',
    );
    assert.equal(receiver.received.find((r) => r.path === '/json')!.headers.authorization, 'Bearer abc');
    const [slack] = receiver.bodies<{ text: string }>('/slack');
    assert.match(slack!.text, /needs an operator/);
    assert.equal(receiver.bodies('/esc').length, 0);
    assert.deepEqual(results.sort(), [
      ['j', 'sent'],
      ['s', 'sent'],
    ]);
  });

  it('a retry sends only to the sinks that failed', async () => {
    const results: [string, SendResult][] = [];
    const notifier = new Notifier({
      sinks: sinks({
        sinks: [
          { name: 'ok', type: 'json', url: `${receiver.url}/ok` },
          { name: 'flaky', type: 'json', url: `${receiver.url}/flaky` },
        ],
      }),
      onResult: (sink, _kind, result) => results.push([sink, result]),
      log: () => {},
    });
    const first = await notifier.send(n('b/1'));
    assert.deepEqual(first.delivered, ['ok']);
    assert.equal(first.failed[0]!.sink, 'flaky');
    assert.equal(first.failed[0]!.permanent, false);
    assert.match(first.failed[0]!.message, /answered 503/);
    const second = await notifier.send(n('b/1'));
    assert.deepEqual(second.failed, []);
    assert.equal(receiver.bodies('/ok').length, 1, 'the sink that had delivered got it twice');
    assert.equal(receiver.bodies('/flaky').length, 2);
    assert.deepEqual(results, [
      ['ok', 'sent'],
      ['flaky', 'failed'],
      ['ok', 'already-sent'],
      ['flaky', 'sent'],
    ]);
  });

  it('a 404 is permanent, a timeout and a refused connection are transient; no message carries the URL path', async () => {
    const gone = httpSink(
      parseNotifyConfig({ sinks: [{ type: 'slack', url: `${receiver.url}/gone/T0/secret` }] }).sinks[0]!,
    );
    await assert.rejects(
      gone.send(n('c/1'), null),
      (err: unknown) =>
        err instanceof SinkError &&
        err.permanent &&
        /answered 404/.test(err.message) &&
        !/secret/.test(err.message),
    );
    const slow = httpSink(
      parseNotifyConfig({ sinks: [{ type: 'json', url: `${receiver.url}/slow`, timeoutMs: 200 }] }).sinks[0]!,
    );
    await assert.rejects(
      slow.send(n('c/2'), null),
      (err: unknown) => err instanceof SinkError && !err.permanent && /within 200 ms/.test(err.message),
    );
    // Port 1 on loopback: nothing listens there.
    const refused = httpSink(
      parseNotifyConfig({ sinks: [{ type: 'json', url: 'http://127.0.0.1:1/x' }] }).sinks[0]!,
    );
    await assert.rejects(
      refused.send(n('c/3'), null),
      (err: unknown) =>
        err instanceof SinkError &&
        !err.permanent &&
        /POST to http:\/\/127\.0\.0\.1:1 failed/.test(err.message),
    );
  });

  it('fleet-wide notifications reach a sink once per window, however many remediations are refused', async () => {
    let now = 1_000_000;
    const results: SendResult[] = [];
    const notifier = new Notifier({
      sinks: sinks({ sinks: [{ name: 'fw', type: 'json', url: `${receiver.url}/fleet-wide` }] }),
      fleetWideRepeatMs: 60_000,
      now: () => now,
      onResult: (_sink, _kind, result) => results.push(result),
      log: () => {},
    });
    for (const id of ['d/1', 'd/2', 'd/3']) await notifier.send(n(id, 'breaker-tripped'));
    now += 60_000;
    await notifier.send(n('d/4', 'breaker-tripped'));
    await notifier.send(n('d/5', 'needs-operator'));
    await notifier.send(n('d/6', 'needs-operator'));
    assert.deepEqual(results, ['sent', 'suppressed', 'suppressed', 'sent', 'sent', 'sent']);
    assert.deepEqual(
      receiver.bodies<JsonNotification>('/fleet-wide').map((b) => b.id),
      ['d/1', 'd/4', 'd/5', 'd/6'],
    );
  });
});
