import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createControlMetrics } from '../../src/observability/metrics.js';
import { startMetricsServer } from '../../src/observability/metrics-server.js';

describe('metrics endpoint', () => {
  it('serves the registry on 127.0.0.1 with the histogram and counters the activities feed', async () => {
    const metrics = createControlMetrics({ defaultMetrics: false });
    metrics.phaseDuration.observe({ phase: 'draining' }, 42);
    metrics.notifications.inc({ sink: 'oncall', result: 'sent' });
    metrics.notifications.inc({ sink: 'oncall', result: 'failed' });
    const server = await startMetricsServer({ registry: metrics.registry, port: 0 });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${server.url}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
      const text = await response.text();
      assert.match(text, /fleetmedic_phase_duration_seconds_bucket\{le="60",phase="draining"\} 1/);
      assert.match(text, /fleetmedic_phase_duration_seconds_sum\{phase="draining"\} 42/);
      assert.match(text, /fleetmedic_notifications_total\{sink="oncall",result="sent"\} 1/);
      assert.match(text, /fleetmedic_notifications_total\{sink="oncall",result="failed"\} 1/);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.close();
    }
  });
});
