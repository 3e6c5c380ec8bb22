import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { approveUpdate, statusQuery } from '../../src/contracts/remediation.js';
import { NODE } from '../../src/contracts/search-attributes.js';
import { clearRemediationHistory, eventually, liftQuarantine } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

/** Debian's chromium (CI installs it in .ci/run); never a downloaded browser. */
const CHROMIUM = process.env.FLEETMEDIC_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

// The Temporal UI of the embedded dev server, driven by a real (headless) browser: an operator
// filters the workflows by the node search attribute, opens the node's remediation and reads its
// phase. Screenshots land in test-artifacts/.
describe('Temporal UI shows a remediation by node', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  let browser: Browser | undefined;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-ui-${process.pid}`;
  const target = 'gpu-node-2';

  async function clearNodeHistory(name: string) {
    await clearRemediationHistory(stack.kc, [name]);
  }

  before(async () => {
    // Fail, never skip, without the browser: a UI test that silently does not run proves nothing.
    await fs.access(CHROMIUM, constants.X_OK).catch(() => {
      throw new Error(
        `chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) ` +
          'or name another build with FLEETMEDIC_CHROMIUM; this test never downloads a browser',
      );
    });
    stack = await useTestStack();
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0.25, maxConcurrentDrains: 2 },
    });
    client = workers.client;
    await clearNodeHistory(target);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // As root (CI containers) chromium needs --no-sandbox.
      args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  });

  after(async () => {
    await browser?.close();
    await workers?.stop();
    if (stack) {
      await liftQuarantine(stack.kc, target).catch(() => {});
      await clearNodeHistory(target).catch(() => {});
    }
  });

  async function screenshot(page: Page, name: string): Promise<string> {
    await fs.mkdir(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, name);
    await page.screenshot({ path: file, fullPage: true });
    process.stdout.write(`# screenshot: ${file}\n`);
    return file;
  }

  it('filters by FleetmedicNode, finds the remediation and reads the phase its status query reports', async () => {
    await gpus.set(target, withFault(healthyGpuState(target), { gpu: 3, xid: 79 }));
    const handle = await startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node: target,
      taskQueue,
      alert: {
        alertName: 'GpuXidCritical',
        status: 'firing',
        episodeKey: `ui-${Date.now()}@${new Date().toISOString()}`,
        xid: 79,
        gpu: 3,
        source: 'temporal-ui test',
      },
      policy: { approvalReminderMs: 3_000, budgetRetryMs: 500, agentScheduleToStartMs: 15_000, diagLevel: 1 },
    });
    const runId = handle.signaledRunId;
    // XID 79 waits for an operator: a phase that holds still while the browser reads it.
    await eventually(
      'awaiting approval',
      async () => ((await handle.query(statusQuery)).phase === 'awaiting-approval' ? true : undefined),
      60_000,
    );

    const page = await browser!.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(30_000);
    const ui = stack.state.temporal.uiUrl;
    assert.match(ui, /^http:\/\/127\.0\.0\.1:\d+$/, 'the UI must listen on 127.0.0.1');

    // The workflows page with a visibility query on the node attribute, as an operator types it.
    const query = `${NODE.name}="${target}"`;
    const list = `${ui}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
    const row = page.locator(`a[href*="${runId}"]`).first();
    await eventually(
      'the run listed under its node',
      async () => {
        await page.goto(list);
        await row.waitFor({ state: 'visible', timeout: 10_000 });
        return true;
      },
      60_000,
    );
    // The filter is applied (not just the URL): every run listed is one of this node's.
    const listed: string[] = [];
    for (const link of await page.locator('a[href*="/workflows/remediation%2F"]').all()) {
      // /namespaces/default/workflows/<workflow ID, URI-encoded>/<run ID>/history
      listed.push(decodeURIComponent((await link.getAttribute('href'))?.split('/')[4] ?? ''));
    }
    assert.ok(listed.length > 0);
    assert.ok(
      listed.every((id) => id.endsWith(`/${target}`)),
      `the filtered list shows other nodes' workflows: ${listed.join(', ')}`,
    );
    await screenshot(page, `temporal-ui-workflows-${target}.png`);

    await row.click();
    await page.waitForURL(new RegExp(`/${runId}/`));

    // The remediation's user metadata: the static summary the client set, and the current details the
    // workflow keeps (asked of the worker through the built-in metadata query).
    await page.getByText('User Metadata', { exact: true }).click();
    // The UI renders user Markdown (summary, details, current details) in sandboxed iframes.
    const rendered = async () =>
      Promise.all(
        page
          .frames()
          .filter((f) => f !== page.mainFrame())
          .map((f) =>
            f
              .locator('body')
              .innerText()
              .catch(() => ''),
          ),
      );
    const metadata = await eventually('the summary and current details shown', async () => {
      const texts = await rendered();
      const summary = texts.find((t) => t.startsWith(`GPU remediation of ${target}`));
      // Current details start with the phase in bold ("awaiting-approval · class reboot-node").
      const current = texts.map((t) => /^([a-z]+(?:-[a-z]+)*)(?: · |\n|$)/.exec(t)?.[1]).find(Boolean);
      return summary && current ? { summary, current } : undefined;
    });
    const remediationShot = await screenshot(page, `temporal-ui-remediation-${target}.png`);

    // The search attributes, as the UI lists them.
    await page.getByText('Search Attributes', { exact: true }).click();
    await page.waitForURL(/\/search-attributes$/);
    const text = await eventually('the search attributes shown', async () => {
      const t = await page.locator('main').innerText();
      return /"FleetmedicPhase"/.test(t) ? t : undefined;
    });
    const phaseOnPage = /"FleetmedicPhase":\s*"([^"]+)"/.exec(text)?.[1];
    const nodeOnPage = /"FleetmedicNode":\s*"([^"]+)"/.exec(text)?.[1];
    await screenshot(page, `temporal-ui-search-attributes-${target}.png`);
    await page.close();

    const status = await handle.query(statusQuery);
    assert.equal(nodeOnPage, target);
    assert.equal(phaseOnPage, status.phase, 'the UI and the status query disagree on the phase');
    assert.equal(phaseOnPage, 'awaiting-approval');
    assert.equal(metadata.current, status.phase, 'the current details and the status query disagree');
    assert.match(metadata.summary, /GpuXidCritical XID 79, GPU 3/);
    assert.ok((await fs.stat(remediationShot)).size > 10_000, 'the screenshot is empty');

    // Leave the node as found: approve the reboot; the simulated reboot brings the GPU back.
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ui-test' }] });
    const result = (await handle.result()) as { outcome: string };
    assert.equal(result.outcome, 'returned-to-service');
  });
});
