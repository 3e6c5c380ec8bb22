#!/usr/bin/env node
/* global fetch, AbortSignal */
// The container image's HEALTHCHECK: GET /healthz of the webhook (FLEETMEDIC_WEBHOOK_PORT) or of the
// control worker's metrics endpoint (FLEETMEDIC_METRICS_PORT), on loopback inside the container.
// Node, not curl: the slim Debian image has no curl, and one fewer package is one fewer CVE feed.
const port = process.env.FLEETMEDIC_WEBHOOK_PORT || process.env.FLEETMEDIC_METRICS_PORT;
if (!port || !/^\d{1,5}$/.test(port) || port === '0') {
  // Unhealthy rather than a check that passes without looking: the image cannot tell a worker
  // without an endpoint from a hung one.
  console.error('healthcheck: no endpoint to check: set FLEETMEDIC_WEBHOOK_PORT or FLEETMEDIC_METRICS_PORT');
  process.exit(1);
}
try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(4000) });
  if (!res.ok) {
    console.error(`healthcheck: http://127.0.0.1:${port}/healthz answered ${res.status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`healthcheck: http://127.0.0.1:${port}/healthz: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
