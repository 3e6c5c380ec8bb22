import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import {
  assertAuthForHost,
  HmacVerifier,
  isLoopbackHost,
  parseCredentials,
  ReplayCache,
  signBody,
  TokenVerifier,
} from '../../src/webhook/auth.js';

describe('bearer tokens', () => {
  const v = new TokenVerifier([
    { caller: 'alertmanager', token: 'am-token-0123456789abcdef' },
    { caller: 'grafana', token: 'gf-token-0123456789abcdef' },
  ]);
  it('names the caller a token belongs to', () => {
    assert.equal(v.verify('am-token-0123456789abcdef'), 'alertmanager');
    assert.equal(v.verify('gf-token-0123456789abcdef'), 'grafana');
  });
  it('refuses a wrong, empty or prefix token', () => {
    for (const t of ['', 'am-token', 'am-token-0123456789abcdeF', 'am-token-0123456789abcdef ']) {
      assert.equal(v.verify(t), undefined, t);
    }
  });
});

describe('HMAC signatures', () => {
  const secret = 'hmac-secret-0123456789abcdef';
  const body = Buffer.from('{"alerts":[]}');
  const now = 1_800_000_000_000;
  const ts = Math.floor(now / 1000);
  const headers = (over: Partial<Record<'keyId' | 'timestamp' | 'signature', string>> = {}) => ({
    keyId: 'src',
    timestamp: String(ts),
    signature: signBody(secret, ts, body),
    ...over,
  });

  it('accepts a good signature once, then refuses the replay', () => {
    const v = new HmacVerifier([{ caller: 'src', secret }], 300_000);
    assert.deepEqual(v.verify(headers(), body, now), { ok: true, caller: 'src', scheme: 'hmac' });
    const again = v.verify(headers(), body, now + 1000);
    assert.ok(!again.ok && /replayed request/.test(again.reason));
  });

  const refusals: [string, ReturnType<typeof headers>, Buffer, number, RegExp][] = [
    ['a tampered body', headers(), Buffer.from('{"alerts":[1]}'), now, /does not match the body/],
    [
      'a wrong secret',
      headers({ signature: signBody('other-secret-0123456789', ts, body) }),
      body,
      now,
      /does not match/,
    ],
    ['an unknown key', headers({ keyId: 'nobody' }), body, now, /unknown signing key "nobody"/],
    [
      'a missing header',
      { keyId: 'src', timestamp: String(ts), signature: '' },
      body,
      now,
      /needs the x-fleetmedic-key-id/,
    ],
    ['an old timestamp', headers(), body, now + 301_000, /301 s away from the server's clock/],
    ['a timestamp that is not a number', headers({ timestamp: 'soon' }), body, now, /Unix seconds/],
  ];
  for (const [name, h, b, at, reason] of refusals) {
    it(`refuses ${name}`, () => {
      const v = new HmacVerifier([{ caller: 'src', secret }], 300_000);
      const r = v.verify(h, b, at);
      assert.ok(!r.ok, 'accepted');
      if (!r.ok) assert.match(r.reason, reason);
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

describe('credentials files and binding', () => {
  it('parses "<caller> <secret>" lines, bare secrets, comments and blank lines', () => {
    assert.deepEqual(parseCredentials('# tokens\n\nalertmanager aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\n', 'f'), [
      { caller: 'alertmanager', secret: 'aaaaaaaaaaaaaaaa' },
      { caller: 'default', secret: 'bbbbbbbbbbbbbbbb' },
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ['a short secret', 'am short', /at least 16 characters/],
    ['three fields', 'a b c', /line 1: expected/],
    ['a repeated caller', 'a aaaaaaaaaaaaaaaa\na bbbbbbbbbbbbbbbb', /line 2: caller a appears twice/],
    ['an empty file', '# nothing\n', /holds no credential/],
  ];
  for (const [name, text, message] of bad) {
    it(`refuses ${name}`, () => assert.throws(() => parseCredentials(text, 'token file t'), message));
  }

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '192.168.1.1'])
      assert.ok(!isLoopbackHost(h), h);
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
