import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasErrorCode, NonLoopbackAddressError } from '../../src/errors.js';
import {
  assertLoopbackAddress,
  assertLoopbackUrl,
  isLoopbackAddress,
  podUrl,
} from '../../src/k8s/loopback.js';

describe('loopback guard', () => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true],
    ['127.128.3.7', true],
    ['127.255.255.254', true],
    ['::1', true],
    ['10.0.0.5', false], // kwok's default pod range
    ['172.16.0.1', false],
    ['192.168.1.10', false],
    ['192.0.2.1', false],
    ['8.8.8.8', false],
    ['128.0.0.1', false],
    ['localhost', false], // a name could resolve anywhere
    ['', false],
    ['127.0.0', false],
  ];
  for (const [address, loopback] of cases) {
    it(`${JSON.stringify(address)} is ${loopback ? '' : 'not '}loopback`, () => {
      assert.equal(isLoopbackAddress(address), loopback);
    });
  }

  it('refuses a non-loopback pod IP in simulated mode, naming it', () => {
    assert.throws(
      () => podUrl({ podIP: '10.0.0.7', port: 8080, simulated: true }),
      (err: Error) => hasErrorCode(err, 'NON_LOOPBACK_ADDRESS') && err.message.includes('10.0.0.7'),
    );
    assert.throws(() => assertLoopbackAddress(undefined), /refusing to connect/);
  });

  it('builds pod URLs for loopback pods, and for any pod on a real cluster', () => {
    assert.equal(podUrl({ podIP: '127.128.0.5', port: 8080, simulated: true }), 'http://127.128.0.5:8080');
    assert.equal(podUrl({ podIP: '10.0.0.7', port: 8080, simulated: false }), 'http://10.0.0.7:8080');
  });
});

describe('assertLoopbackUrl (what a simulation may reach)', () => {
  for (const url of ['http://127.0.0.1:9095/v1/alerts', 'https://127.45.0.2/hook', 'http://[::1]:8080/x']) {
    it(`accepts ${url}`, () => assertLoopbackUrl(url, 'the webhook'));
  }
  const refused: Array<[string, RegExp]> = [
    ['https://hooks.example.com/services/T0/B0/secret', /at https:\/\/hooks\.example\.com: the cluster/],
    ['http://localhost:9095/', /at http:\/\/localhost:9095/],
    ['http://10.0.0.7/hook', /at http:\/\/10\.0\.0\.7/],
    ['http://192.168.1.2/hook', /192\.168\.1\.2/],
    ['not a url', /not a URL/],
  ];
  for (const [url, message] of refused) {
    it(`refuses ${url}, naming only the origin`, () => {
      assert.throws(
        () => assertLoopbackUrl(url, 'notification sink "x"'),
        (err: Error) =>
          err instanceof NonLoopbackAddressError && message.test(err.message) && !/secret/.test(err.message),
      );
    });
  }
});
