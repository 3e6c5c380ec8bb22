import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { gatewayInput, registerGatewayCommands, serveConfig } from '../../src/cli/commands/gateway.js';
import { NonLoopbackAddressError } from '../../src/errors.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';

describe('fleetmedic gateway serve: flags', () => {
  it('map to the configuration fields, defaults filled in by the schema', () => {
    const config = parseGatewayConfig(
      gatewayInput(
        {
          host: '127.0.0.1',
          port: 9000,
          replica: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
          deployment: 'inference/llama',
          failureThreshold: 7,
          halfOpenAfter: 1000,
          ttfbTimeout: 500,
          retryBudgetPercent: 10,
          oomPattern: 'OOM',
        },
        { kubeconfig: '/tmp/kubeconfig', inCluster: false },
      ),
    );
    assert.deepEqual(config.kube, {
      namespace: 'inference',
      deployment: 'llama',
      kubeconfig: '/tmp/kubeconfig',
      inCluster: false,
      port: 8080,
    });
    assert.deepEqual(config.breaker, { failureThreshold: 7, halfOpenAfterMs: 1000 });
    assert.equal(config.timeouts.ttfbMs, 500);
    assert.equal(config.timeouts.streamIdleMs, 30_000);
    assert.equal(config.retry.budgetPercent, 10);
    assert.equal(config.retry.minConcurrent, 3);
    assert.equal(config.oom.bodyPattern, 'OOM');
    assert.equal(config.loopbackOnly, true);
  });

  it('a deployment needs explicit credentials (a kubeconfig or in-cluster) and a namespace/name', () => {
    assert.throws(
      () => gatewayInput({ host: 'h', port: 1, deployment: 'inference/llama' }, { inCluster: false }),
      /--deployment needs explicit credentials: --kubeconfig <file> or FLEETMEDIC_KUBECONFIG, or FLEETMEDIC_IN_CLUSTER=true/,
    );
    assert.throws(
      () => gatewayInput({ host: 'h', port: 1, deployment: 'llama' }, { kubeconfig: '/k', inCluster: false }),
      /<namespace>\/<name>/,
    );
  });

  it("in a pod (FLEETMEDIC_IN_CLUSTER=true) watches the Deployment with the pod's ServiceAccount, on a real cluster", () => {
    const config = serveConfig(
      { host: '0.0.0.0', port: 8080, deployment: 'inference/llama' },
      { kubeconfig: undefined, inCluster: true },
    );
    assert.deepEqual(config.kube, {
      namespace: 'inference',
      deployment: 'llama',
      inCluster: true,
      port: 8080,
    });
    // In a pod the cluster is real: pod IPs and the bind address need not be loopback.
    assert.equal(config.loopbackOnly, false);
    assert.equal(config.host, '0.0.0.0');
    // Never both credentials, nor neither (the configuration refuses both earlier; the schema too).
    assert.throws(
      () =>
        parseGatewayConfig({
          kube: { namespace: 'a', deployment: 'b', kubeconfig: '/k', inCluster: true },
        }),
      /exactly one of kubeconfig \(a file\) and inCluster \(the pod's ServiceAccount\), got both/,
    );
    assert.throws(() => parseGatewayConfig({ kube: { namespace: 'a', deployment: 'b' } }), /got neither/);
  });

  it('binds a non-loopback host only on a real cluster: --any-address or in-cluster', () => {
    const file = { kubeconfig: '/tmp/kubeconfig', inCluster: false };
    for (const host of ['0.0.0.0', '10.0.0.5', '::', 'localhost', 'gateway.example.com']) {
      assert.throws(
        () => serveConfig({ host, port: 8080, replica: ['http://127.0.0.1:1'] }, file),
        (err: unknown) =>
          err instanceof NonLoopbackAddressError &&
          err.address === host &&
          err.message.includes(`refusing to bind ${host}: the cluster is a fleetmedic simulation`) &&
          err.message.includes('--any-address') &&
          err.message.includes('FLEETMEDIC_IN_CLUSTER=true'),
        host,
      );
      assert.equal(
        serveConfig({ host, port: 8080, replica: ['http://127.0.0.1:1'], anyAddress: true }, file).host,
        host,
      );
      assert.equal(
        serveConfig({ host, port: 8080, replica: ['http://10.0.0.7:8080'] }, { inCluster: true }).host,
        host,
      );
    }
    for (const host of ['127.0.0.1', '127.128.0.9', '::1']) {
      assert.equal(
        serveConfig({ host, port: 8080, replica: ['http://127.0.0.1:1'] }, file).loopbackOnly,
        true,
      );
    }
    // Outside a real cluster a replica outside loopback is refused too, with the existing message.
    assert.throws(
      () => serveConfig({ host: '127.0.0.1', port: 8080, replica: ['http://10.0.0.7:8080'] }, file),
      /refusing replica http:\/\/10\.0\.0\.7:8080 at http:\/\/10\.0\.0\.7:8080: the cluster is a fleetmedic simulation/,
    );
  });

  it('registers serve and standin', () => {
    const program = new Command('fleetmedic');
    registerGatewayCommands(program, { stderr: () => {} });
    const gateway = program.commands.find((c) => c.name() === 'gateway')!;
    assert.deepEqual(gateway.commands.map((c) => c.name()).sort(), ['serve', 'standin']);
  });
});
