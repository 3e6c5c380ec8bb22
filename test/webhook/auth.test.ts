import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import {
  assertAuthForHost,
  HmacVerifier,
  isLoopbackHost,
  parseCredentials,
  ReplayCache,
  signingString,
  signRequest,
  TokenVerifier,
  type SignedRequest,
} from '../../src/webhook/auth.js';
import { FailureLimiter } from '../../src/webhook/authenticate.js';
import { assertMetricsHost } from '../../src/webhook/server.js';

describe('bearer tokens', () => {
  const v = new TokenVerifier([
    { caller: 'alertmanager', token: 'am-token-0123456789abcdef' },
    { caller: 'grafana', token: 'gf-token-0123456789abcdef', scopes: ['alerts', 'operator'] },
    { caller: 'chatops', token: 'co-token-0123456789abcdef', scopes: ['operator'] },
  ]);
  it('names the caller a token belongs to, with its scopes (none named: alerts only)', () => {
    const who = (t: string) => {
      const id = v.verify(t);
      return id && [id.caller, [...id.scopes]];
    };
    assert.deepEqual(who('am-token-0123456789abcdef'), ['alertmanager', ['alerts']]);
    assert.deepEqual(who('gf-token-0123456789abcdef'), ['grafana', ['alerts', 'operator']]);
    assert.deepEqual(who('co-token-0123456789abcdef'), ['chatops', ['operator']]);
  });
  it('refuses a wrong, empty or prefix token', () => {
    for (const t of ['', 'am-token', 'am-token-0123456789abcdeF', 'am-token-0123456789abcdef ']) {
      assert.equal(v.verify(t), undefined, t);
    }
  });
});

describe('HMAC signatures', () => {
  const secret = 'hmac-secret-0123456789abcdef';
  const request: SignedRequest = { method: 'POST', target: '/v1/alerts', body: Buffer.from('{"alerts":[]}') };
  const now = 1_800_000_000_000;
  const ts = Math.floor(now / 1000);
  const headers = (over: Partial<Record<'keyId' | 'timestamp' | 'signature', string>> = {}) => ({
    keyId: 'src',
    timestamp: String(ts),
    signature: signRequest(secret, ts, request),
    ...over,
  });

  it('signs "<timestamp>.<METHOD>.<path>?<query>.<body>" (the worked example of docs/webhook.md)', () => {
    const example = {
      method: 'POST',
      target: '/v1/alerts?dryRun=true',
      body: '{"alerts":[{"alertName":"GpuXidError","node":"gpu-node-7","xid":79}]}',
    };
    assert.equal(
      signingString(1767225600, example).toString(),
      '1767225600.POST./v1/alerts?dryRun=true.{"alerts":[{"alertName":"GpuXidError","node":"gpu-node-7","xid":79}]}',
    );
    // The same as `printf '%s' '<string>' | openssl dgst -sha256 -hmac example-secret-0123456789`.
    assert.equal(
      signRequest('example-secret-0123456789', 1767225600, example),
      'sha256=9d2567a559cdfc2b905f56ec016e7a3504f75b7d260141a1c2024363c3926b92',
    );
  });

  it('accepts a good signature once, then refuses the replay; the identity carries the scopes', () => {
    const v = new HmacVerifier([{ caller: 'src', secret, scopes: ['operator'] }], 300_000);
    const ok = v.verify(headers(), request, now);
    assert.ok(ok.ok);
    assert.deepEqual([ok.caller, [...ok.scopes]], ['src', ['operator']]);
    const again = v.verify(headers(), request, now + 1000);
    assert.ok(!again.ok && /replayed request/.test(again.reason));
  });

  const refusals: [string, ReturnType<typeof headers>, SignedRequest, number, RegExp][] = [
    ['a tampered body', headers(), { ...request, body: '{"alerts":[1]}' }, now, /does not match the request/],
    ['another path', headers(), { ...request, target: '/v1/alerts/alertmanager' }, now, /does not match/],
    ['an added query', headers(), { ...request, target: '/v1/alerts?dryRun=true' }, now, /does not match/],
    ['another method', headers(), { ...request, method: 'PUT' }, now, /does not match/],
    ['another timestamp', headers({ timestamp: String(ts + 1) }), request, now, /does not match/],
    [
      'a wrong secret',
      headers({ signature: signRequest('other-secret-0123456789', ts, request) }),
      request,
      now,
      /does not match/,
    ],
    ['an unknown key', headers({ keyId: 'nobody' }), request, now, /unknown signing key "nobody"/],
    [
      'a missing header',
      { keyId: 'src', timestamp: String(ts), signature: '' },
      request,
      now,
      /needs the x-fleetmedic-key-id/,
    ],
    ['an old timestamp', headers(), request, now + 301_000, /301 s away from the server's clock/],
    ['a timestamp that is not a number', headers({ timestamp: 'soon' }), request, now, /Unix seconds/],
  ];
  for (const [name, h, r, at, reason] of refusals) {
    it(`refuses ${name}`, () => {
      const v = new HmacVerifier([{ caller: 'src', secret }], 300_000);
      const result = v.verify(h, r, at);
      assert.ok(!result.ok, 'accepted');
      if (!result.ok) assert.match(result.reason, reason);
    });
  }

  it('the replay cache forgets entries after its window and stays bounded', () => {
    const c = new ReplayCache(1000, 3);
    assert.ok(c.remember('a', 0));
    assert.ok(!c.remember('a', 500));
    assert.ok(c.remember('a', 2000), 'expired entries are forgotten');
    for (const k of ['b', 'c', 'd', 'e']) assert.ok(c.remember(k, 2001));
    assert.ok(c.remember('a', 2002), 'the oldest entry was evicted when full');
  });
});

describe('failed authentications per source', () => {
  it('blocks a source at the limit until its window ends; other sources are not affected', () => {
    const l = new FailureLimiter(3, 60_000);
    for (const t of [0, 1000, 2000]) {
      assert.equal(l.blockedFor('10.0.0.1', t), 0);
      l.fail('10.0.0.1', t);
    }
    assert.equal(l.blockedFor('10.0.0.1', 2000), 58_000);
    assert.equal(l.blockedFor('10.0.0.2', 2000), 0, 'another source');
    assert.equal(l.blockedFor('10.0.0.1', 60_000), 0, 'a new window');
    l.fail('10.0.0.1', 60_000);
    assert.equal(l.blockedFor('10.0.0.1', 60_001), 0, 'one failure in the new window');
  });

  it('stays bounded: the oldest sources are forgotten first', () => {
    const l = new FailureLimiter(1, 60_000, 2);
    l.fail('a', 0);
    l.fail('b', 1);
    l.fail('c', 2);
    assert.deepEqual(
      ['a', 'b', 'c'].map((s) => l.blockedFor(s, 3) > 0),
      [false, true, true],
    );
  });
});

describe('credentials files and binding', () => {
  it('parses "<caller> <secret> [<scope>]" lines, bare secrets, comments and blank lines', () => {
    assert.deepEqual(
      parseCredentials(
        '# tokens\n\nalertmanager aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\n' +
          'bob cccccccccccccccc operator\nbot dddddddddddddddd alerts,operator\nam2 eeeeeeeeeeeeeeee alerts\n',
        'f',
      ),
      [
        { caller: 'alertmanager', secret: 'aaaaaaaaaaaaaaaa' },
        { caller: 'default', secret: 'bbbbbbbbbbbbbbbb' },
        { caller: 'bob', secret: 'cccccccccccccccc', scopes: ['operator'] },
        { caller: 'bot', secret: 'dddddddddddddddd', scopes: ['alerts', 'operator'] },
        { caller: 'am2', secret: 'eeeeeeeeeeeeeeee', scopes: ['alerts'] },
      ],
    );
  });

  const secret = 'sssssssssssssssssss-secret';
  const bad: [string, string, RegExp][] = [
    ['a short secret', 'am short', /token file t line 1: field 2 \(secret\): the secret must be at least 16/],
    ['a short bare secret', 'short', /line 1: the secret: the secret must be at least 16/],
    [
      'four fields',
      `a ${secret} alerts extra`,
      /line 1: expected "<caller> <secret> \[<scope>\]".*got 4 fields/,
    ],
    [
      'an unknown scope',
      `a ${secret} admin`,
      /line 1: field 3 \(scope\): the scope must be alerts, operator or/,
    ],
    ['an empty scope in a list', `a ${secret} alerts,`, /line 1: field 3 \(scope\)/],
    [
      'a repeated scope',
      `a ${secret} alerts,alerts`,
      /line 1: field 3 \(scope\): the scope names a scope twice/,
    ],
    ['a bad caller name', `-a ${secret}`, /line 1: field 1 \(caller\): the caller name must be/],
    ['a repeated caller', 'a aaaaaaaaaaaaaaaa\na bbbbbbbbbbbbbbbb', /line 2: caller a appears twice/],
    [
      'a secret given to two callers',
      'a aaaaaaaaaaaaaaaa\nb aaaaaaaaaaaaaaaa',
      /line 2: the same secret as line 1/,
    ],
    ['an empty file', '# nothing\n', /holds no credential/],
  ];
  for (const [name, text, message] of bad) {
    it(`refuses ${name}, naming the line and never echoing a value`, () =>
      assert.throws(
        () => parseCredentials(text, 'token file t'),
        (e: unknown) =>
          e instanceof ConfigError &&
          message.test(e.message) &&
          !e.message.includes(secret) &&
          !e.message.includes('admin') &&
          !e.message.includes('short ') &&
          !/aaaa/.test(e.message),
      ));
  }

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '192.168.1.1'])
      assert.ok(!isLoopbackHost(h), h);
  });

  it('serves /metrics (no credentials) on a non-loopback address only when allowed', () => {
    assert.doesNotThrow(() => assertMetricsHost('127.0.0.1', false));
    assert.doesNotThrow(() => assertMetricsHost('0.0.0.0', true));
    assert.throws(() => assertMetricsHost('0.0.0.0', false), /0\.0\.0\.0.*--allow-unauthenticated-metrics/);
  });

  it('requires credentials whenever the server binds a non-loopback address', () => {
    const none = { tokens: [], hmacKeys: [] };
    assert.doesNotThrow(() => assertAuthForHost(none, '127.0.0.1'));
    assert.throws(
      () => assertAuthForHost(none, '0.0.0.0'),
      (e: unknown) => e instanceof ConfigError && /0\.0\.0\.0/.test(e.message),
    );
    assert.doesNotThrow(() =>
      assertAuthForHost({ tokens: [{ caller: 'a', token: 'x'.repeat(16) }], hmacKeys: [] }, '0.0.0.0'),
    );
  });
});
