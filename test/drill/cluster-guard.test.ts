import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decideDrillTarget,
  type DrillKubeconfig,
  type DrillTargetFacts,
} from '../../src/drill/cluster-guard.js';

const UID = '6f1d0c4e-0000-4000-8000-000000000001';
const OTHER_UID = '6f1d0c4e-0000-4000-8000-000000000002';
const FILE = '/etc/fleetmedic/prod.kubeconfig';

/** A real cluster with every flag right and the identity matching: the drill is allowed. */
function real(over: Partial<DrillTargetFacts> = {}): DrillTargetFacts {
  return {
    simulated: false,
    clusterId: 'prod-west',
    kubeconfig: { from: 'flag', file: FILE, contexts: ['prod-west', 'staging'] },
    context: 'prod-west',
    confirmCluster: 'prod-west',
    targetUrl: true,
    drainNode: false,
    identity: {
      bound: { kubeSystemUid: UID, server: 'https://prod-west:6443', boundAt: '2026-11-01T00:00:00.000Z' },
      reached: { kubeSystemUid: UID, server: 'https://prod-west:6443' },
    },
    ...over,
  };
}

const refusal = (facts: DrillTargetFacts): string => {
  const d = decideDrillTarget(facts);
  assert.equal(d.kind, 'refused', JSON.stringify(d));
  return d.kind === 'refused' ? d.reason : '';
};

describe('decideDrillTarget: the embedded stack', () => {
  it('needs nothing more on a simulated cluster, and drains as before', () => {
    const bare: DrillTargetFacts = {
      simulated: true,
      clusterId: 'sim',
      kubeconfig: { from: 'environment', file: '/tmp/state/kubeconfig', contexts: ['kwok'] },
      context: undefined,
      confirmCluster: undefined,
      targetUrl: false,
      drainNode: false,
    };
    assert.deepEqual(decideDrillTarget(bare), { kind: 'allowed', drainNode: true });
  });
});

describe('decideDrillTarget: a real cluster', () => {
  it('allows a drill with --kubeconfig, --context, the confirmation and the identity matching', () => {
    assert.deepEqual(decideDrillTarget(real()), { kind: 'allowed', drainNode: false });
    assert.deepEqual(decideDrillTarget(real({ drainNode: true })), { kind: 'allowed', drainNode: true });
  });

  it('asks for the identity once the flags pass, never allowing without it', () => {
    assert.deepEqual(decideDrillTarget(real({ identity: undefined })), {
      kind: 'check-identity',
      context: 'prod-west',
    });
  });

  it('refuses the pod’s ServiceAccount: the kubeconfig must be named', () => {
    assert.match(
      refusal(real({ kubeconfig: { from: 'in-cluster' } })),
      /needs its kubeconfig named on the command line \(--kubeconfig <file>\), not the pod's ServiceAccount/,
    );
  });

  it('refuses FLEETMEDIC_KUBECONFIG alone, saying which flag to add', () => {
    assert.match(
      refusal(real({ kubeconfig: { from: 'environment', file: FILE, contexts: ['prod-west'] } })),
      /add --kubeconfig \/etc\/fleetmedic\/prod\.kubeconfig \(FLEETMEDIC_KUBECONFIG alone is not enough\)/,
    );
  });

  it('refuses without --context, listing the file’s contexts', () => {
    assert.match(
      refusal(real({ context: undefined })),
      /needs --context <name>, the context of \/etc\/fleetmedic\/prod\.kubeconfig .*\(the file has: prod-west, staging\)/,
    );
    assert.match(refusal(real({ context: '' })), /needs --context <name>/);
  });

  it('refuses a --context the kubeconfig does not have', () => {
    assert.match(
      refusal(real({ context: 'prod-east' })),
      /--context prod-east is not a context of \/etc\/fleetmedic\/prod\.kubeconfig \(it has: prod-west, staging\)/,
    );
  });

  it('refuses without a confirmation, saying how to give it', () => {
    assert.match(
      refusal(real({ confirmCluster: undefined })),
      /deletes and evicts pods: confirm with --confirm-cluster prod-west, the cluster ID its control worker is bound to/,
    );
    assert.match(refusal(real({ confirmCluster: undefined, drainNode: true })), /and drains a node: confirm/);
  });

  it('refuses a confirmation that names another cluster ID', () => {
    assert.match(
      refusal(real({ confirmCluster: 'prod-east' })),
      /--confirm-cluster prod-east does not name the cluster ID the drill runs under \(prod-west/,
    );
  });

  it('refuses without --target-url: stand-ins, gateway and worker are the embedded stack’s', () => {
    assert.match(
      refusal(real({ targetUrl: false })),
      /needs --target-url, the gateway in front of its Deployment/,
    );
  });

  it('refuses a cluster ID bound to no cluster: its control worker binds it', () => {
    assert.match(
      refusal(real({ identity: { bound: undefined, reached: { kubeSystemUid: UID, server: 'https://x' } } })),
      /cluster ID prod-west is bound to no cluster yet .*start its control worker/,
    );
  });

  it('refuses a context that reaches another cluster than the one the cluster ID is bound to, naming both', () => {
    const reason = refusal(
      real({
        identity: {
          bound: {
            kubeSystemUid: UID,
            server: 'https://prod-west:6443',
            boundAt: '2026-11-01T00:00:00.000Z',
          },
          reached: { kubeSystemUid: OTHER_UID, server: 'https://staging:6443' },
        },
      }),
    );
    assert.match(
      reason,
      new RegExp(
        `bound to the cluster at https://prod-west:6443 \\(kube-system UID ${UID}, since 2026-11-01T00:00:00.000Z\\), ` +
          `but --kubeconfig /etc/fleetmedic/prod\\.kubeconfig --context prod-west reaches https://staging:6443 ` +
          `\\(kube-system UID ${OTHER_UID}\\)`,
      ),
    );
  });

  it('fails safe: a binding without a UID refuses', () => {
    assert.match(
      refusal(real({ identity: { bound: {}, reached: { kubeSystemUid: UID, server: 'https://x' } } })),
      /bound to no cluster yet/,
    );
  });
});

describe('decideDrillTarget: property', () => {
  const kubeconfig: fc.Arbitrary<DrillKubeconfig> = fc.oneof(
    fc.constant({ from: 'in-cluster' as const }),
    fc.record({
      from: fc.constantFrom('flag' as const, 'environment' as const),
      file: fc.constant(FILE),
      contexts: fc.subarray(['a', 'b', 'c']),
    }),
  );
  const name = fc.option(fc.constantFrom('', 'a', 'b', 'c', 'd'), { nil: undefined });
  const uid = fc.constantFrom(UID, OTHER_UID);
  const facts: fc.Arbitrary<DrillTargetFacts> = fc.record({
    simulated: fc.constant(false),
    clusterId: fc.constantFrom('a', 'b'),
    kubeconfig,
    context: name,
    confirmCluster: name,
    targetUrl: fc.boolean(),
    drainNode: fc.boolean(),
    identity: fc.option(
      fc.record({
        bound: fc.option(fc.record({ kubeSystemUid: uid, server: fc.constant('https://s') }), {
          nil: undefined,
        }),
        reached: fc.record({ kubeSystemUid: uid, server: fc.constant('https://r') }),
      }),
      { nil: undefined },
    ),
  });

  it('never allows a real cluster unless kubeconfig, context, confirmation and identity all match', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const d = decideDrillTarget(f);
        const k = f.kubeconfig;
        const matches =
          k.from === 'flag' &&
          f.context !== undefined &&
          k.contexts.includes(f.context) &&
          f.confirmCluster === f.clusterId &&
          f.targetUrl &&
          f.identity?.bound !== undefined &&
          f.identity.bound.kubeSystemUid === f.identity.reached.kubeSystemUid;
        assert.equal(d.kind === 'allowed', matches);
        if (d.kind === 'allowed') assert.equal(d.drainNode, f.drainNode);
      }),
      { numRuns: 2000 },
    );
  });
});
