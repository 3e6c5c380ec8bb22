import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GPU_RESOURCE, PROCESS_LABEL } from '../../src/k8s/labels.js';
import { DRILL_LABEL, gatewayManifests, standinManifests } from '../../src/drill/standin-manifest.js';
import { GATEWAY_UPSTREAM_ANNOTATION } from '../../src/runner/process-kinds.js';

describe("the drill's own Deployments", () => {
  it('stand-ins: required anti-affinity, a GPU each, a PDB and a Service, all with the drill label', () => {
    const m = standinManifests({ namespace: 'ns', name: 'chat', drillId: 'd1' });
    const pod = m.deployment.spec!.template;
    assert.equal(m.deployment.spec!.replicas, 3);
    assert.equal(pod.metadata!.labels![PROCESS_LABEL], 'standin');
    assert.ok(pod.spec!.affinity!.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution);
    assert.equal(pod.spec!.containers[0]!.resources!.requests![GPU_RESOURCE], '1');
    assert.equal(pod.spec!.containers[0]!.lifecycle!.preStop!.sleep!.seconds, 3);
    assert.equal(pod.spec!.terminationGracePeriodSeconds, 13);
    for (const obj of [m.deployment, m.pdb, m.service])
      assert.equal(obj.metadata!.labels![DRILL_LABEL], 'd1');
    assert.deepEqual(m.pdb.spec!.selector!.matchLabels, { app: 'chat' });
    assert.deepEqual(m.service.spec!.selector, { app: 'chat' });
  });

  it('gateway pods: the runner kind gateway in front of the upstream, no GPU, spread (preferred), a PDB', () => {
    const m = gatewayManifests({ namespace: 'ns', name: 'chat-gateway', upstream: 'chat', drillId: 'd1' });
    const pod = m.deployment.spec!.template;
    assert.equal(m.deployment.spec!.replicas, 2);
    assert.equal(pod.metadata!.labels![PROCESS_LABEL], 'gateway');
    assert.equal(pod.metadata!.annotations![GATEWAY_UPSTREAM_ANNOTATION], 'chat');
    assert.ok(pod.spec!.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution);
    assert.equal(pod.spec!.containers[0]!.resources, undefined, 'a gateway pod asks for no GPU');
    assert.equal(pod.spec!.containers[0]!.readinessProbe!.httpGet!.path, '/healthz');
    // The grace period covers the preStop sleep and the gateway's 8 s drain.
    assert.ok(pod.spec!.terminationGracePeriodSeconds! >= 2 + 8, 'grace shorter than preStop + drain');
    assert.equal(m.pdb.spec!.maxUnavailable, 1);
    assert.equal(m.pdb.metadata!.labels![DRILL_LABEL], 'd1');
  });
});
