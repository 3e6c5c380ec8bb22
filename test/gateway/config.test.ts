import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { ConfigError } from '../../src/errors.js';

describe('gateway configuration', () => {
  it('fills in the defaults the issue names', () => {
    const config = parseGatewayConfig({ replicas: ['http://127.0.0.1:8081'] });
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.breaker.failureThreshold, 5);
    assert.equal(config.breaker.halfOpenAfterMs, 60_000);
    assert.equal(config.retry.budgetPercent, 20);
    assert.equal(config.retry.minConcurrent, 3);
    assert.ok(Object.isFrozen(config));
  });

  it('names the bad field, the value and what was expected', () => {
    assert.throws(
      () => parseGatewayConfig({ replicas: ['http://127.0.0.1:1'], breaker: { failureThreshold: 0 } }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /breaker\.failureThreshold: .*(>=|at least).*1.*\(got 0\)/.test(err.message),
    );
    assert.throws(
      () => parseGatewayConfig({ replicas: ['not a url'] }),
      (err: unknown) => err instanceof ConfigError && /replicas\.0: .*\(got "not a url"\)/.test(err.message),
    );
    assert.throws(
      () => parseGatewayConfig({ replicas: ['http://127.0.0.1:1'], oom: { bodyPattern: '(' } }),
      /oom\.bodyPattern: not a valid regular expression/,
    );
    assert.throws(
      () => parseGatewayConfig({ replicas: ['http://127.0.0.1:1'], colour: 'red' }),
      /colour|\(root\)/,
    );
  });

  it('refuses a gateway without replicas, and non-loopback addresses unless told otherwise', () => {
    assert.throws(() => parseGatewayConfig({}), /no replicas/);
    assert.throws(() => parseGatewayConfig({ replicas: ['http://10.0.0.5:8080'] }), /refusing replica/);
    assert.throws(
      () => parseGatewayConfig({ replicas: ['http://127.0.0.1:1'], fallbackUrl: 'http://10.0.0.9:80' }),
      /refusing the fallback service/,
    );
    const open = parseGatewayConfig({ replicas: ['http://10.0.0.5:8080'], loopbackOnly: false });
    assert.deepEqual(open.replicas, ['http://10.0.0.5:8080']);
  });
});
