import type {
  KubernetesObject,
  V1ClusterRole,
  V1ConfigMap,
  V1DaemonSet,
  V1Deployment,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1PolicyRule,
  V1Role,
  V1Secret,
  V1ValidatingAdmissionPolicy,
} from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_GPU_DAEMONSET_SELECTORS,
  gpuDaemonSetBlockers,
  gpuDaemonSetSelectors,
} from '../../src/k8s/gpu-daemonsets.js';
import { QUARANTINE_TAINT_KEY } from '../../src/k8s/remediation-labels.js';
import { parseResetHolders } from '../../src/gpu/reset-holders.js';
import { parseRebootCommand } from '../../src/cli/commands/agent.js';
import { parseNotifyConfig } from '../../src/notify/config.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { parseRules } from '../../src/webhook/rules.js';
import { Command } from 'commander';
import { registerGatewayCommands, serveConfig, type ServeOptions } from '../../src/cli/commands/gateway.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import { loadConfig } from '../../src/config/config.js';
import { parseGatewayConfig, type GatewayConfig } from '../../src/gateway/config.js';
import { renderInferenceManifest } from '../../src/inference/manifest.js';
import { startGateway } from '../../src/gateway/server.js';
import { KURED_REBOOT_COMMAND } from '../helpers/agent-node.js';
import { clients, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import {
  CHART_DIR,
  find,
  helm,
  PRODUCTION_VALUES,
  renderChart,
  serverSideApply,
  type Rendered,
} from './chart.js';

const NS = 'fleetmedic';

function env(spec: V1PodSpec, container = 0): Record<string, V1EnvVar> {
  return Object.fromEntries((spec.containers[container]?.env ?? []).map((e) => [e.name, e]));
}

function rulesOf(objects: readonly KubernetesObject[]): V1PolicyRule[] {
  return objects
    .filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
    .flatMap((o) => (o as V1Role).rules ?? []);
}

/** "group/resource[/sub]: verbs" lines, sorted, for comparing a role with a table. */
function grants(role: V1Role | V1ClusterRole): string[] {
  return (role.rules ?? [])
    .flatMap((r) =>
      (r.apiGroups ?? []).flatMap((g) =>
        (r.resources ?? []).map((res) => `${g || 'core'}/${res}: ${[...r.verbs].sort().join(',')}`),
      ),
    )
    .sort();
}

/**
 * A container's arguments through the real `fleetmedic gateway serve` flags (commander: an unknown
 * or malformed flag throws) and the settings its action builds from them, with the container's
 * environment as the configuration (FLEETMEDIC_IN_CLUSTER and the rest).
 */
async function gatewayServeConfig(spec: V1PodSpec): Promise<GatewayConfig> {
  const container = spec.containers[0]!;
  const silent = { writeErr: () => {}, writeOut: () => {} };
  const program = new Command('fleetmedic').exitOverride().configureOutput(silent);
  addGlobalFlags(program);
  registerGatewayCommands(program, { stderr: () => {} });
  const gateway = program.commands
    .find((c) => c.name() === 'gateway')!
    .exitOverride()
    .configureOutput(silent);
  const serve = gateway.commands.find((c) => c.name() === 'serve')!;
  const env = Object.fromEntries(
    (container.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])),
  );
  let config: GatewayConfig | undefined;
  serve
    .exitOverride()
    .configureOutput(silent)
    .action((opts: ServeOptions) => {
      config = serveConfig(opts, loadConfig(env));
    });
  await program.parseAsync([...(container.command ?? []), ...(container.args ?? [])], { from: 'user' });
  if (!config) throw new Error(`no gateway serve in ${JSON.stringify(container.args)}`);
  return config;
}

describe('Helm chart: rendered', () => {
  let defaults: Rendered[];
  let production: Rendered[];

  before(async () => {
    [defaults, production] = await Promise.all([
      renderChart({ release: 'fleetmedic', namespace: NS }),
      renderChart({ release: 'fleetmedic', namespace: NS, valuesFiles: [PRODUCTION_VALUES] }),
    ]);
  });

  it('passes helm lint --strict with the default and with the production values', async () => {
    await helm(['lint', '--strict', CHART_DIR]);
    await helm(['lint', '--strict', CHART_DIR, '--values', PRODUCTION_VALUES]);
  });

  it('keeps the control worker off the GPU nodes it manages: 2 replicas, spread, under a PDB', () => {
    for (const objects of [defaults, production]) {
      const worker = find<V1Deployment>(objects, 'Deployment', '-worker');
      assert.equal(worker.spec?.replicas, 2);
      const pod = worker.spec.template.spec!;
      const terms =
        pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
      assert.deepEqual(terms, [
        {
          matchExpressions: [
            { key: 'nvidia.com/gpu.present', operator: 'DoesNotExist' },
            { key: 'nvidia.com/gpu.count', operator: 'DoesNotExist' },
          ],
        },
      ]);
      assert.ok(pod.affinity?.podAntiAffinity, 'worker replicas not spread over nodes');
      assert.equal(pod.containers[0]?.args?.[0], 'worker');
      assert.equal(env(pod).FLEETMEDIC_IN_CLUSTER?.value, 'true');
      const pdb = find<V1PodDisruptionBudget>(objects, 'PodDisruptionBudget', '-worker');
      assert.equal(pdb.spec?.minAvailable, 1);
      assert.deepEqual(pdb.spec?.selector?.matchLabels, worker.spec?.selector.matchLabels);
    }
  });

  it('runs the node agent on GPU nodes through a quarantine, system-node-critical, privileged only for the GPU reset', async () => {
    assert.equal(
      defaults.some((o) => o.kind === 'DaemonSet'),
      false,
      'the agent (issue #14) is off by default',
    );
    const agent = find<V1DaemonSet>(production, 'DaemonSet', '-node-agent');
    const pod = agent.spec!.template.spec!;
    assert.deepEqual(pod.nodeSelector, { 'nvidia.com/gpu.present': 'true' });
    assert.equal(pod.priorityClassName, 'system-node-critical');
    const tolerated = (pod.tolerations ?? []).map((t) => `${t.key}:${t.effect}`);
    for (const t of [
      'fleetmedic.io/quarantine:NoSchedule',
      'nvidia.com/gpu:NoSchedule',
      'node.kubernetes.io/unschedulable:NoSchedule',
    ]) {
      assert.ok(tolerated.includes(t), `${t} not tolerated: ${tolerated.join(', ')}`);
    }
    assert.deepEqual(pod.containers[0]?.args, ['agent', '--node', '$(NODE_NAME)']);
    assert.equal(env(pod).NODE_NAME?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    // No GPU request: the agent must not take a GPU from the workloads.
    assert.equal(JSON.stringify(pod.containers[0]?.resources).includes('nvidia.com/gpu'), false);
    assert.equal(pod.containers[0]?.securityContext?.privileged, true);
    assert.equal(pod.serviceAccountName, 'fleetmedic-node-agent');
    // The release waits for the agent: the default selectors find it, and it runs through a quarantine.
    const quarantined = simNodeManifest(0, 'fleetmedic');
    quarantined.spec = { unschedulable: true, taints: [{ key: QUARANTINE_TAINT_KEY, effect: 'NoSchedule' }] };
    assert.deepEqual(
      gpuDaemonSetBlockers(
        quarantined,
        gpuDaemonSetSelectors(DEFAULT_GPU_DAEMONSET_SELECTORS),
        [agent],
        [],
      ).map((b) => b.split(' (')[0]),
      [`GPU DaemonSet ${NS}/fleetmedic-node-agent`],
    );

    const readOnly = await renderChart({
      release: 'fleetmedic',
      namespace: NS,
      valuesFiles: [PRODUCTION_VALUES],
      set: { 'nodeAgent.repairSteps.gpuReset': false },
    });
    // Reset holders: a ConfigMap the agent reads (validated by the agent's own parser), and hostPID.
    const holders = [
      {
        name: 'nvidia-persistenced',
        stop: ['nsenter', '-t', '1', '-m', '--', 'systemctl', 'stop', 'nvidia-persistenced'],
        start: ['nsenter', '-t', '1', '-m', '--', 'systemctl', 'start', 'nvidia-persistenced'],
      },
    ];
    const withHolders = await renderChart({
      release: 'fleetmedic',
      namespace: NS,
      valuesFiles: [PRODUCTION_VALUES],
      setJson: { 'nodeAgent.repairSteps.resetHolders': holders },
    });
    const held = find<V1DaemonSet>(withHolders, 'DaemonSet', '-node-agent').spec!.template.spec!;
    assert.equal(held.hostPID, true);
    assert.equal(env(held).FLEETMEDIC_RESET_HOLDERS?.value, '/etc/fleetmedic/reset-holders/holders.yaml');
    const file = find<V1ConfigMap>(withHolders, 'ConfigMap', '-node-agent-reset-holders').data![
      'holders.yaml'
    ]!;
    assert.deepEqual(
      parseResetHolders(parseYaml(file), 'holders.yaml').map((h) => [h.name, h.stop, h.start]),
      holders.map((h) => [h.name, h.stop, h.start]),
    );
    assert.notEqual(pod.hostPID, true, 'hostPID without reset holders');

    const ro = find<V1DaemonSet>(readOnly, 'DaemonSet', '-node-agent').spec!.template.spec!;
    assert.notEqual(ro.containers[0]?.securityContext?.privileged, true);
    assert.equal(ro.containers[0]?.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(ro.securityContext?.runAsNonRoot, true);
  });

  it('reboots only with nodeAgent.reboot.enabled: then --reboot-command (the argv as JSON), hostPID and a privileged root container', async () => {
    const agentPod = (objects: readonly Rendered[]) =>
      find<V1DaemonSet>(objects, 'DaemonSet', '-node-agent').spec!.template.spec!;
    const off = agentPod(production);
    assert.ok(!off.containers[0]?.args?.includes('--reboot-command'), 'a reboot command while disabled');
    assert.notEqual(off.hostPID, true, 'hostPID without reboots or reset holders');

    const kured = [...KURED_REBOOT_COMMAND];
    for (const gpuReset of [true, false]) {
      const on = agentPod(
        await renderChart({
          release: 'fleetmedic',
          namespace: NS,
          valuesFiles: [PRODUCTION_VALUES],
          set: { 'nodeAgent.reboot.enabled': true, 'nodeAgent.repairSteps.gpuReset': gpuReset },
        }),
      );
      const args = on.containers[0]!.args!;
      assert.deepEqual(args.slice(0, 3), ['agent', '--node', '$(NODE_NAME)']);
      // The flag's value through the agent's own parser: the default is kured's command.
      const at = args.indexOf('--reboot-command');
      assert.ok(at > 0, args.join(' '));
      assert.deepEqual(parseRebootCommand(args[at + 1]!), kured);
      assert.equal(args[args.indexOf('--reboot-timeout') + 1], '30');
      assert.equal(on.hostPID, true, `no hostPID (gpuReset ${gpuReset})`);
      assert.equal(
        on.containers[0]?.securityContext?.privileged,
        true,
        `not privileged (gpuReset ${gpuReset})`,
      );
      assert.equal(on.securityContext?.runAsUser, 0);
    }
    await assert.rejects(
      renderChart({
        release: 'fleetmedic',
        namespace: NS,
        valuesFiles: [PRODUCTION_VALUES],
        set: { 'nodeAgent.reboot.enabled': true },
        setJson: { 'nodeAgent.reboot.command': [] },
      }),
      /nodeAgent.reboot.command must name the reboot command/,
    );
  });

  it('grants the control worker what its code calls, and no secrets, no exec, no wildcards anywhere', () => {
    const cluster = find<V1ClusterRole>(production, 'ClusterRole', '-worker');
    assert.deepEqual(grants(cluster), [
      'apps/daemonsets: get,list,watch',
      'core/configmaps: get',
      'core/namespaces: get',
      'core/nodes: get,list,patch,watch',
      'core/pods/eviction: create',
      'core/pods: delete,get,list,watch',
      'policy/poddisruptionbudgets: get,list,watch',
    ]);
    const events = find<V1Role>(production, 'Role', '-worker-events');
    assert.equal(events.metadata?.namespace, 'default');
    assert.deepEqual(grants(events), ['core/events: create']);
    const own = production.find(
      (o) => o.kind === 'Role' && o.metadata?.name === 'fleetmedic-worker',
    ) as V1Role;
    assert.equal(own.metadata?.namespace, NS);
    assert.deepEqual(grants(own), ['core/configmaps: create,get,list,patch,update,watch']);
    const drill = find<V1Role>(production, 'Role', '-worker-drill');
    assert.equal(drill.metadata?.namespace, 'fleetmedic-drill');
    assert.deepEqual(grants(drill), [
      'apps/deployments: create,delete,get,list,patch,update,watch',
      'core/services: create,delete,get,list,patch,update,watch',
      'policy/poddisruptionbudgets: create,delete,get,list,patch,update,watch',
    ]);

    for (const rule of rulesOf(production)) {
      const what = JSON.stringify(rule);
      assert.ok(!rule.resources?.includes('secrets'), `a role grants secrets: ${what}`);
      assert.ok(!rule.resources?.some((r) => /^pods\/(exec|attach|portforward|proxy)$/.test(r)), what);
      assert.ok(
        ![...(rule.verbs ?? []), ...(rule.resources ?? []), ...(rule.apiGroups ?? [])].includes('*'),
        what,
      );
      assert.ok(!rule.verbs.some((v) => ['escalate', 'bind', 'impersonate'].includes(v)), what);
      // Named objects: the worker's simulation marker, the gateway's Deployment; read only.
      if (rule.resourceNames) {
        assert.ok(
          [
            JSON.stringify([['configmaps'], ['fleetmedic-simulation'], ['get']]),
            JSON.stringify([['deployments'], ['fleetmedic-inference'], ['get']]),
          ].includes(JSON.stringify([rule.resources, rule.resourceNames, rule.verbs])),
          what,
        );
      }
    }
  });

  it('lets the node agent and the webhook only get nodes, the gateway only get its Deployment and watch pods where the inference runs', () => {
    for (const component of ['-node-agent', '-webhook']) {
      assert.deepEqual(grants(find<V1ClusterRole>(production, 'ClusterRole', component)), [
        'core/nodes: get',
      ]);
    }
    const gateway = find<V1Role>(production, 'Role', '-gateway');
    assert.equal(gateway.metadata?.namespace, 'inference');
    assert.deepEqual(grants(gateway), ['apps/deployments: get', 'core/pods: list,watch']);
    assert.deepEqual(
      gateway.rules?.map((r) => r.resourceNames),
      [['fleetmedic-inference'], undefined],
      'get on its own Deployment only',
    );
    // Each process runs under its own ServiceAccount.
    const accounts = production
      .filter((o) => o.kind === 'ServiceAccount')
      .map((o) => o.metadata?.name)
      .sort();
    assert.deepEqual(accounts, [
      'fleetmedic-gateway',
      'fleetmedic-node-agent',
      'fleetmedic-webhook',
      'fleetmedic-worker',
    ]);
  });

  it("binds the admission policy to the worker's ServiceAccount alone, for node updates", () => {
    const policy = find<V1ValidatingAdmissionPolicy>(
      production,
      'ValidatingAdmissionPolicy',
      '-node-patches',
    );
    assert.deepEqual(policy.spec?.matchConditions, [
      {
        name: 'fleetmedic-worker',
        expression: "request.userInfo.username == 'system:serviceaccount:fleetmedic:fleetmedic-worker'",
      },
    ]);
    assert.deepEqual(policy.spec?.matchConstraints?.resourceRules?.[0]?.resources, ['nodes']);
    assert.equal(policy.spec?.failurePolicy, 'Fail');
    const binding = find<KubernetesObject & { spec: { policyName: string; validationActions: string[] } }>(
      production,
      'ValidatingAdmissionPolicyBinding',
      '-node-patches',
    );
    assert.equal(binding.spec.policyName, policy.metadata?.name);
    assert.deepEqual(binding.spec.validationActions, ['Deny']);
  });

  it('renders rules and notification sinks from values into what the webhook and the worker accept', async () => {
    for (const objects of [defaults, production]) {
      const rules = find<V1ConfigMap>(objects, 'ConfigMap', '-webhook-rules');
      const parsed = parseRules(parseYaml(rules.data!['rules.yaml']!), 'rendered rules');
      assert.ok(parsed.rules.length >= 2);
    }
    assert.equal(
      parseRules(parseYaml(find<V1ConfigMap>(defaults, 'ConfigMap', '-rules').data!['rules.yaml']!)).mode,
      'shadow',
    );
    const sinks = [
      { name: 'oncall', type: 'slack', url: 'https://hooks.example.com/T0/B0', events: ['needs-operator'] },
    ];
    const withSinks = await renderChart({
      release: 'fleetmedic',
      namespace: NS,
      set: {
        'notify.sinks[0].name': 'oncall',
        'notify.sinks[0].type': 'slack',
        'notify.sinks[0].url': sinks[0]!.url,
        'notify.sinks[0].events[0]': 'needs-operator',
      },
    });
    const secret = find<V1Secret>(withSinks, 'Secret', '-notify');
    const notify = parseNotifyConfig(parseYaml(secret.stringData!['notify.yaml']!), 'rendered notify.yaml');
    assert.deepEqual(
      notify.sinks.map((s) => [s.name, s.type, s.url, s.events]),
      [['oncall', 'slack', sinks[0]!.url, ['needs-operator']]],
    );
    const worker = find<V1Deployment>(withSinks, 'Deployment', '-worker').spec!.template.spec!;
    assert.equal(env(worker).FLEETMEDIC_NOTIFY_CONFIG?.value, '/etc/fleetmedic/notify/notify.yaml');
    assert.ok(worker.volumes?.some((v) => v.secret?.secretName === secret.metadata?.name));
    // The webhook serves on the pod IP with its rules and its bearer tokens.
    const webhook = find<V1Deployment>(production, 'Deployment', '-webhook').spec!.template.spec!;
    assert.deepEqual(webhook.containers[0]?.args, [
      'webhook',
      'serve',
      '--rules',
      '/etc/fleetmedic/rules/rules.yaml',
      '--host',
      '0.0.0.0',
      '--port',
      '9095',
      '--token-file',
      '/etc/fleetmedic/auth/tokens',
      '--metrics-port',
      '9096',
      '--metrics-host',
      '0.0.0.0',
      '--allow-unauthenticated-metrics',
    ]);
    assert.ok(webhook.volumes?.some((v) => v.secret?.secretName === 'fleetmedic-webhook-auth'));
    assert.equal(find(production, 'Service', '-webhook').kind, 'Service');
  });

  it('connects to Temporal as the values say: address, namespace, TLS files from Secrets, API key by reference', () => {
    const pod = find<V1Deployment>(production, 'Deployment', '-worker').spec!.template.spec!;
    const e = env(pod);
    assert.equal(e.FLEETMEDIC_TEMPORAL_ADDRESS?.value, 'fleetmedic.a1b2c.tmprl.cloud:7233');
    assert.equal(e.FLEETMEDIC_TEMPORAL_NAMESPACE?.value, 'fleetmedic.a1b2c');
    assert.equal(e.FLEETMEDIC_TEMPORAL_TLS?.value, 'true');
    assert.equal(e.FLEETMEDIC_TEMPORAL_TLS_SERVER_NAME?.value, 'fleetmedic.a1b2c.tmprl.cloud');
    assert.equal(e.FLEETMEDIC_TEMPORAL_TLS_CA_FILE?.value, '/etc/fleetmedic/temporal-ca/ca.crt');
    assert.equal(e.FLEETMEDIC_TEMPORAL_TLS_CERT_FILE?.value, '/etc/fleetmedic/temporal-client/tls.crt');
    assert.equal(e.FLEETMEDIC_TEMPORAL_TLS_KEY_FILE?.value, '/etc/fleetmedic/temporal-client/tls.key');
    assert.deepEqual(e.FLEETMEDIC_TEMPORAL_API_KEY?.valueFrom?.secretKeyRef, {
      name: 'fleetmedic-temporal-api-key',
      key: 'api-key',
    });
    assert.equal(e.FLEETMEDIC_CLUSTER_ID?.value, 'prod-us-east-1');
    const secrets = (pod.volumes ?? []).map((v) => v.secret?.secretName).filter(Boolean);
    assert.ok(secrets.includes('fleetmedic-temporal-ca') && secrets.includes('fleetmedic-temporal-client'));
    // The default: plain connection, no TLS variables, the release name as the cluster ID.
    const d = env(find<V1Deployment>(defaults, 'Deployment', '-worker').spec!.template.spec!);
    assert.equal(d.FLEETMEDIC_TEMPORAL_TLS, undefined);
    assert.equal(d.FLEETMEDIC_TEMPORAL_API_KEY, undefined);
    assert.equal(d.FLEETMEDIC_CLUSTER_ID?.value, 'fleetmedic');
  });

  it('refuses a cluster ID that is not a DNS label, and TLS files or an API key without TLS', async () => {
    await assert.rejects(
      renderChart({ release: 'fleetmedic', namespace: NS, set: { clusterId: 'Prod_1' } }),
      /clusterId "Prod_1" must be a DNS label/,
    );
    await assert.rejects(
      renderChart({ release: 'fleetmedic', namespace: NS, set: { 'temporal.tls.caSecret': 'ca' } }),
      /need temporal.tls.enabled: true/,
    );
    await assert.rejects(
      renderChart({ release: 'fleetmedic', namespace: NS, set: { 'temporal.apiKey.existingSecret': 'key' } }),
      /an API key is sent over TLS only/,
    );
  });

  it('runs the example inference service as llama.cpp server-cuda on a GPU each, Ready only once the model loaded', () => {
    const inference = find<V1Deployment>(production, 'Deployment', '-inference');
    assert.equal(inference.metadata?.namespace, 'inference');
    assert.equal(inference.spec?.replicas, 3);
    assert.deepEqual(inference.spec?.strategy?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
    const pod = inference.spec.template.spec!;
    const server = pod.containers[0]!;
    assert.equal(server.image, 'ghcr.io/ggml-org/llama.cpp:server-cuda');
    assert.equal(server.resources?.limits?.['nvidia.com/gpu'], 1);
    assert.ok(server.args?.includes('--model'), `no model source in ${server.args?.join(' ')}`);
    assert.equal(server.startupProbe?.httpGet?.path, '/health');
    assert.equal(server.readinessProbe?.httpGet?.path, '/health');
    // Still serving while the gateway's watch drops it: llama-server stops its queue at SIGTERM.
    assert.equal(server.lifecycle?.preStop?.sleep?.seconds, 15);
    assert.ok((pod.terminationGracePeriodSeconds ?? 30) > 15);
    assert.equal(inference.spec.template.metadata?.labels?.['fleetmedic.io/process'], undefined);
    const anti = pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0];
    assert.equal(anti?.topologyKey, 'kubernetes.io/hostname');
    assert.equal(
      find<V1PodDisruptionBudget>(production, 'PodDisruptionBudget', '-inference').spec?.maxUnavailable,
      1,
    );
    assert.equal(find(production, 'Service', '-inference').metadata?.namespace, 'inference');

    const gateway = find<V1Deployment>(production, 'Deployment', '-gateway');
    assert.ok((gateway.spec?.replicas ?? 0) >= 2);
    assert.equal(
      gateway.spec!.template.spec!.affinity?.podAntiAffinity
        ?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey,
      'kubernetes.io/hostname',
    );
    assert.equal(
      find<V1PodDisruptionBudget>(production, 'PodDisruptionBudget', '-gateway').spec?.minAvailable,
      1,
    );
  });
});

describe('Helm chart: the inference Deployment in one place, rendered for the embedded stack', () => {
  it('renders the same Deployment as a process-runner llama.cpp replica with a ready port when simulation is on', async () => {
    const real = await renderInferenceManifest({
      cacheDir: loadConfig().cacheDir,
      namespace: 'ns',
      release: 'r',
    });
    const sim = await renderInferenceManifest({
      cacheDir: loadConfig().cacheDir,
      namespace: 'ns',
      release: 'r',
      replicas: 3,
      simulation: { model: 'smollm2', checkpointStore: 'ckpt' },
    });
    const template = sim.deployment.spec!.template;
    assert.equal(template.metadata?.labels?.['fleetmedic.io/process'], 'llama-server');
    assert.deepEqual(template.metadata?.annotations, {
      'fleetmedic.io/model': 'smollm2',
      'fleetmedic.io/checkpoint-store': 'ckpt',
    });
    const server = template.spec!.containers[0]!;
    assert.deepEqual(
      server.ports?.map((p) => [p.name, p.containerPort]),
      [
        ['http', 8080],
        ['ready', 8081],
      ],
    );
    assert.deepEqual(server.readinessProbe?.httpGet, { path: '/ready', port: 'ready' });
    assert.equal(server.startupProbe, undefined);
    // Everything the drill's preflight and the gateway rely on is the real Deployment's.
    for (const m of [real, sim]) {
      assert.deepEqual(m.deployment.spec?.strategy?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
      assert.equal(
        m.deployment.spec.template.spec!.affinity?.podAntiAffinity
          ?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey,
        'kubernetes.io/hostname',
      );
      assert.equal(m.deployment.spec.template.spec!.containers[0]!.lifecycle?.preStop?.sleep?.seconds, 15);
      assert.deepEqual(m.pdb.spec?.selector?.matchLabels, m.deployment.spec?.selector.matchLabels);
      assert.deepEqual(m.service.spec?.selector, m.deployment.spec?.selector.matchLabels);
    }
    assert.deepEqual(
      { ...real.deployment.spec!.template.spec!.affinity },
      { ...sim.deployment.spec!.template.spec!.affinity },
    );
  });
});

describe('Helm chart: the gateway runs `fleetmedic gateway serve` as the CLI defines it', () => {
  it('renders arguments the real CLI parses: in-cluster, on the pod IP, the inference Deployment, breaker, continuation', async () => {
    const production = await renderChart({
      release: 'fleetmedic',
      namespace: NS,
      valuesFiles: [PRODUCTION_VALUES],
    });
    const deployment = find<V1Deployment>(production, 'Deployment', '-gateway');
    const pod = deployment.spec!.template.spec!;
    assert.deepEqual(pod.containers[0]?.args?.slice(0, 2), ['gateway', 'serve']);
    const config = await gatewayServeConfig(pod);
    const inference = find<V1Deployment>(production, 'Deployment', '-inference');
    // The Deployment it watches is the chart's llama.cpp inference Deployment, on its port.
    assert.deepEqual(config.kube, {
      namespace: inference.metadata?.namespace,
      deployment: inference.metadata?.name,
      inCluster: true,
      port: inference.spec!.template.spec!.containers[0]!.ports![0]!.containerPort,
    });
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.loopbackOnly, false);
    assert.equal(config.continuation, true);
    assert.deepEqual(config.breaker, { failureThreshold: 5, halfOpenAfterMs: 60_000 });
    assert.equal(config.fallbackUrl, undefined);
    // The container port, the Service and the probes are the port the gateway listens on.
    const container = pod.containers[0];
    assert.deepEqual(container.ports, [{ name: 'http', containerPort: config.port }]);
    assert.equal(find(production, 'Service', '-gateway').metadata?.name, deployment.metadata?.name);
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      assert.deepEqual(probe?.httpGet, { path: '/healthz', port: 'http' });
    }
    assert.deepEqual(container.lifecycle?.preStop, { sleep: { seconds: 5 } });
    // The probed path is one the gateway serves: 200 on a gateway whose only replica is down.
    const probed = await startGateway(
      parseGatewayConfig({ port: 0, replicas: ['http://127.0.0.1:1'], health: { intervalMs: 60_000 } }),
    );
    try {
      const res = await fetch(`${probed.url}${container.readinessProbe!.httpGet!.path}`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { ok: boolean }).ok, true);
    } finally {
      await probed.close();
    }
    // At least 2 replicas, spread over nodes, under a PDB; its ServiceAccount is the Role's subject.
    assert.equal(deployment.spec?.replicas, 3);
    assert.equal(
      pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey,
      'kubernetes.io/hostname',
    );
    assert.equal(
      find<V1PodDisruptionBudget>(production, 'PodDisruptionBudget', '-gateway').spec?.minAvailable,
      1,
    );
    const binding = find(production, 'RoleBinding', '-gateway') as unknown as {
      metadata: { namespace: string };
      subjects: Array<{ name: string; namespace: string }>;
    };
    assert.equal(binding.metadata.namespace, config.kube?.namespace);
    assert.deepEqual(binding.subjects, [
      { kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: NS },
    ]);

    // The check has teeth: the arguments the chart used to render are refused by the CLI.
    const old = structuredClone(pod);
    old.containers[0]!.args = ['gateway', '--port', '8080', '--namespace', 'inference', '--selector', 'a=b'];
    await assert.rejects(
      gatewayServeConfig(old),
      /unknown option '--port'|unknown command|too many arguments/,
    );
    old.containers[0]!.args = ['gateway', 'serve', '--port', '8080', '--namespace', 'inference'];
    await assert.rejects(gatewayServeConfig(old), /unknown option '--namespace'/);
  });

  it('fronts another Deployment when gateway.deployment names one: its namespace and name in the flags and the Role, a fallback, no continuation', async () => {
    const objects = await renderChart({
      release: 'fleetmedic',
      namespace: NS,
      set: {
        'gateway.enabled': true,
        'gateway.deployment.namespace': 'serving',
        'gateway.deployment.name': 'vllm',
        'gateway.deployment.port': 8000,
        'gateway.fallback.url': 'http://small.serving.svc:8080',
        'gateway.fallback.model': 'small',
        'gateway.breaker.failureThreshold': 3,
        'gateway.breaker.halfOpenAfterMs': 1_000_000,
      },
      setJson: { 'gateway.extraArgs': ['--ttfb-timeout', '30000'] },
    });
    const deployment = find<V1Deployment>(objects, 'Deployment', '-gateway');
    assert.equal(deployment.spec?.replicas, 2);
    const config = await gatewayServeConfig(deployment.spec.template.spec!);
    assert.deepEqual(config.kube, { namespace: 'serving', deployment: 'vllm', inCluster: true, port: 8000 });
    assert.equal(config.continuation, false);
    assert.equal(config.fallbackUrl, 'http://small.serving.svc:8080');
    assert.equal(config.fallbackModel, 'small');
    assert.deepEqual(config.breaker, { failureThreshold: 3, halfOpenAfterMs: 1_000_000 });
    assert.equal(config.timeouts.ttfbMs, 30_000);
    const role = find<V1Role>(objects, 'Role', '-gateway');
    assert.equal(role.metadata?.namespace, 'serving');
    assert.deepEqual(role.rules?.[0]?.resourceNames, ['vllm']);
    assert.equal(
      objects.some((o) => o.metadata?.name?.endsWith('-inference')),
      false,
    );

    // Default values with the gateway and the example inference on: 2 replicas, continuation on.
    const both = await renderChart({
      release: 'fm',
      namespace: NS,
      set: { 'gateway.enabled': true, 'inference.enabled': true },
    });
    const own = await gatewayServeConfig(
      find<V1Deployment>(both, 'Deployment', '-gateway').spec!.template.spec!,
    );
    assert.deepEqual(own.kube, {
      namespace: NS,
      deployment: 'fm-fleetmedic-inference',
      inCluster: true,
      port: 8080,
    });
    assert.equal(own.continuation, true);
    assert.ok(find(both, 'Deployment', 'fm-fleetmedic-inference'));

    // Nothing to front: refused at render time, naming the value.
    await assert.rejects(
      renderChart({ release: 'fleetmedic', namespace: NS, set: { 'gateway.enabled': true } }),
      /gateway\.deployment\.name is required when inference\.enabled is false/,
    );
    await assert.rejects(
      renderChart({
        release: 'fleetmedic',
        namespace: NS,
        set: { 'gateway.enabled': true, 'inference.enabled': true, 'gateway.continuation': 'maybe' },
      }),
      /gateway\.continuation must be auto, true or false/,
    );
  });
});

describe('Helm chart: server-side dry-run on the embedded API server', () => {
  let stack: TestStack;
  const cleanup: Array<() => Promise<void>> = [];

  before(async () => {
    stack = await useTestStack();
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it('accepts every object of the default and of the production render, and the agent with reboots on (strict field validation, admission included)', async () => {
    const release = await tempNamespace(stack.kc, 'fmchart');
    cleanup.push(release.remove);
    const inference = await tempNamespace(stack.kc, 'fminfer');
    cleanup.push(inference.remove);
    const drill = await tempNamespace(stack.kc, 'fmdrill');
    cleanup.push(drill.remove);
    const renders = {
      defaults: await renderChart({ release: 'fleetmedic', namespace: release.name }),
      production: await renderChart({
        release: 'fleetmedic',
        namespace: release.name,
        valuesFiles: [PRODUCTION_VALUES],
        set: { 'inference.namespace': inference.name, 'drill.namespace': drill.name },
      }),
      // Reboots on: the agent's DaemonSet with hostPID, the flags and a privileged container.
      reboot: (
        await renderChart({
          release: 'fleetmedic',
          namespace: release.name,
          valuesFiles: [PRODUCTION_VALUES],
          set: {
            'inference.namespace': inference.name,
            'drill.namespace': drill.name,
            'nodeAgent.reboot.enabled': true,
          },
        })
      ).filter((o) => o.kind === 'DaemonSet'),
    };
    for (const [name, objects] of Object.entries(renders)) {
      const refused: string[] = [];
      for (const object of objects) {
        const res = await serverSideApply(stack.kc, object, { dryRun: true });
        if (res.status !== 200 && res.status !== 201) {
          refused.push(
            `${object.kind} ${object.metadata?.name} (${object.source}): HTTP ${res.status} ${res.message}`,
          );
        }
      }
      assert.deepEqual(refused, [], `${name}: the API server refused\n${refused.join('\n')}`);
    }
    // The check has teeth: a misspelt field is refused, not dropped.
    const worker = find<V1Deployment>(renders.defaults, 'Deployment', '-worker');
    const typo = structuredClone(worker);
    Object.assign(typo.spec!.template.spec!.containers[0]!, { readinesProbe: {} });
    const refusedTypo = await serverSideApply(stack.kc, typo, { dryRun: true });
    // Server-side apply answers 500 (not 422) when the object does not fit the schema.
    assert.ok(refusedTypo.status >= 400, `HTTP ${refusedTypo.status} ${refusedTypo.message}`);
    assert.match(refusedTypo.message, /readinesProbe: field not declared in schema/);
    // Dry run: nothing was created.
    const { apps } = clients(stack.kc);
    assert.equal((await apps.listNamespacedDeployment({ namespace: release.name })).items.length, 0);
    assert.equal(renders.production.length > renders.defaults.length, true);
  });
});
