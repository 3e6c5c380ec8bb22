import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { gatewayInput, registerGatewayCommands } from '../../src/cli/commands/gateway.js';
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
        '/tmp/kubeconfig',
      ),
    );
    assert.deepEqual(config.kube, {
      namespace: 'inference',
      deployment: 'llama',
      kubeconfig: '/tmp/kubeconfig',
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

  it('a deployment needs an explicit kubeconfig and a namespace/name', () => {
    assert.throws(
      () => gatewayInput({ host: 'h', port: 1, deployment: 'inference/llama' }, undefined),
      /kubeconfig/,
    );
    assert.throws(
      () => gatewayInput({ host: 'h', port: 1, deployment: 'llama' }, '/k'),
      /<namespace>\/<name>/,
    );
  });

  it('registers serve and standin', () => {
    const program = new Command('fleetmedic');
    registerGatewayCommands(program, { stderr: () => {} });
    const gateway = program.commands.find((c) => c.name() === 'gateway')!;
    assert.deepEqual(gateway.commands.map((c) => c.name()).sort(), ['serve', 'standin']);
  });
});
