import { Command } from 'commander';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { registerWebhookCommands } from '../../src/cli/commands/webhook.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import { xidPayload } from './helpers.js';

const RULES = fileURLToPath(new URL('../fixtures/webhook/rules.yaml', import.meta.url));

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const program = new Command('fleetmedic').exitOverride().configureOutput({ writeErr: () => undefined });
  addGlobalFlags(program);
  registerWebhookCommands(program, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  await program.parseAsync(['node', 'fleetmedic', ...args]);
  return { stdout, stderr };
}

describe('fleetmedic webhook dry-run', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-webhook-cli-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function payloadFile(name: string, body: unknown): Promise<string> {
    const file = path.join(dir, name);
    await fs.writeFile(file, typeof body === 'string' ? body : JSON.stringify(body));
    return file;
  }

  it('prints what each alert would do, starting nothing', async () => {
    const body = xidPayload('gpu-node-2');
    body.alerts.push(
      { ...body.alerts[0]!, labels: { ...body.alerts[0]!.labels, xid: '13' } },
      { ...body.alerts[0]!, labels: { alertname: 'GpuNvlinkDown', Hostname: 'gpu-node-3' } },
      { ...body.alerts[0]!, labels: { alertname: 'GpuXidCritical' } },
    );
    const file = await payloadFile('am.json', body);
    const { stdout } = await cli('--cluster-id', 'prod-a', 'webhook', 'dry-run', '--rules', RULES, file);
    const out = JSON.parse(stdout) as {
      format: string;
      nodeChecks: string;
      alerts: { action: string; rule?: string; workflowId?: string; shadow?: boolean; reason?: string }[];
    };
    assert.equal(out.format, 'alertmanager');
    assert.match(out.nodeChecks, /not evaluated/);
    assert.deepEqual(
      out.alerts.map((a) => [a.action, a.rule, a.workflowId, a.shadow]),
      [
        ['start-or-join', 'gpu-faults', 'remediation/prod-a/gpu-node-2', false],
        ['ignore', 'app-xids', undefined, undefined],
        ['start-or-join', 'nvlink-shadow', 'remediation/prod-a/gpu-node-3', true],
        ['reject', undefined, undefined, undefined],
      ],
    );
    assert.match(out.alerts[3]?.reason ?? '', /no node label/);
  });

  it('reads the generic form too', async () => {
    const file = await payloadFile('generic.json', {
      alerts: [{ alertName: 'GpuHealthFailure', node: 'gpu-node-1', labels: { severity: 'page' } }],
    });
    const out = JSON.parse((await cli('webhook', 'dry-run', '--rules', RULES, file)).stdout) as {
      format: string;
      alerts: { action: string; workflowId: string }[];
    };
    assert.equal(out.format, 'generic');
    assert.match(out.alerts[0]?.workflowId ?? '', /^remediation\/[^/]+\/gpu-node-1$/);
  });

  it('says what is wrong with an invalid payload', async () => {
    const bad = await payloadFile('bad.json', { alerts: [{ status: 'firing', labels: { gpu: 3 } }] });
    await assert.rejects(
      cli('webhook', 'dry-run', '--rules', RULES, bad),
      /invalid Alertmanager webhook v4 payload: alerts\[0\]\.labels\.gpu/,
    );
    const broken = await payloadFile('broken.json', '{"alerts": [');
    await assert.rejects(
      cli('webhook', 'dry-run', '--rules', RULES, broken),
      /payload .*broken\.json: .*JSON/,
    );
  });

  it('says which rules file is broken', async () => {
    const rules = await payloadFile(
      'rules.yaml',
      'rules:\n  - name: x\n    match: { alertname: A }\n    action: explode\n',
    );
    const file = await payloadFile('ok.json', xidPayload());
    await assert.rejects(
      cli('webhook', 'dry-run', '--rules', rules, file),
      /invalid rules in .*rules\.yaml: rules\.0\.action/,
    );
  });
});

describe('fleetmedic webhook serve: refused before it starts', () => {
  it('refuses half a TLS configuration, an unreadable certificate, and a metrics host without a port', async () => {
    await assert.rejects(
      cli('webhook', 'serve', '--rules', RULES, '--tls-cert-file', '/nonexistent/cert.pem'),
      /--tls-cert-file \(FLEETMEDIC_WEBHOOK_TLS_CERT_FILE\) and --tls-key-file .* go together: got only --tls-cert-file/,
    );
    await assert.rejects(
      cli(
        'webhook',
        'serve',
        '--rules',
        RULES,
        '--tls-cert-file',
        '/nonexistent/c',
        '--tls-key-file',
        '/nonexistent/k',
      ),
      /--tls-cert-file \/nonexistent\/c could not be read/,
    );
    await assert.rejects(
      cli('webhook', 'serve', '--rules', RULES, '--metrics-host', '127.0.0.1'),
      /--metrics-host \(FLEETMEDIC_WEBHOOK_METRICS_HOST\) needs --metrics-port/,
    );
    await assert.rejects(
      cli('webhook', 'serve', '--rules', RULES, '--metrics-port', 'x'),
      /--metrics-port must be a port/,
    );
  });

  it('refuses FLEETMEDIC_WEBHOOK_ALLOW_UNAUTHENTICATED_METRICS set to anything but true or 1', async () => {
    const name = 'FLEETMEDIC_WEBHOOK_ALLOW_UNAUTHENTICATED_METRICS';
    process.env[name] = 'false';
    try {
      await assert.rejects(
        cli('webhook', 'serve', '--rules', RULES),
        /FLEETMEDIC_WEBHOOK_ALLOW_UNAUTHENTICATED_METRICS must be "true" or "1" \(or unset\), got "false"/,
      );
    } finally {
      delete process.env[name];
    }
  });
});
