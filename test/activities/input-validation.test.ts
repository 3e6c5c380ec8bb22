import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeConfig, type ApiType } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import fc from 'fast-check';
import { z } from 'zod';
import { objectName, text, validateInput } from '../../src/activities/input.js';
import { createKubernetesActivities } from '../../src/activities/kubernetes/index.js';
import { createNodeAgentActivities } from '../../src/activities/node-agent.js';
import { createCapacityActivities } from '../../src/activities/remediation-support/capacity.js';
import { createRemediationSupportActivities } from '../../src/activities/remediation-support/index.js';
import { FailureType } from '../../src/errors.js';

// Activity input validation (zod, src/activities/input.ts) through the activities themselves: a bad
// input fails before any API call with a non-retryable InvalidInput naming the activity and the
// field; a good one gets past validation (and reaches the API, which these tests replace by a stub
// that throws). No cluster, no Temporal server.

const REACHED_API = 'reached the API';

/** An API client whose every call throws {@link REACHED_API}: validation passed. */
function stubApi<T extends ApiType>(): T {
  return new Proxy({} as T, {
    get: () => () => {
      throw new Error(REACHED_API);
    },
  });
}

/** A kubeconfig that is never dialled (validation fails first). */
function unusedKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

const kubernetes = createKubernetesActivities({
  kc: unusedKubeConfig(),
  clusterId: 'lab-1',
  apiClient: stubApi,
});

/** Matches a non-retryable InvalidInput of `activity` whose message names `field` (e.g. `input.node`). */
function invalidInput(activity: string, field: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, FailureType.InvalidInput);
    assert.equal(err.nonRetryable, true);
    assert.ok(err.message.startsWith(`${activity}: `), err.message);
    assert.ok(
      [': ', '[', '.'].some((next) => err.message.includes(`${field}${next}`)),
      `"${err.message}" does not name ${field}`,
    );
    return true;
  };
}

function reachedApi(err: unknown): boolean {
  assert.ok(
    err instanceof Error && err.message === REACHED_API,
    `expected to reach the API, got ${String(err)}`,
  );
  return true;
}

describe('validateInput', () => {
  const schema = z.object({ node: objectName, reason: text(8), list: z.array(z.number()).optional() });

  it('returns the parsed input, without keys the schema does not know', () => {
    assert.deepEqual(validateInput('a', schema, { node: 'gpu-1', reason: 'xid', extra: 1 }), {
      node: 'gpu-1',
      reason: 'xid',
    });
  });

  it('names the activity, the field, the value and its type', () => {
    assert.throws(
      () => validateInput('checkEpisode', schema, { node: 'Not_A_Name', reason: 'x' }),
      (err: ApplicationFailure) =>
        err.type === 'InvalidInput' &&
        err.nonRetryable &&
        err.message ===
          'checkEpisode: input.node: must be a Kubernetes object name, got "Not_A_Name" (string)',
    );
  });

  it('names array elements by index, and a missing object as the input itself', () => {
    assert.throws(
      () => validateInput('a', schema, { node: 'n', reason: 'r', list: [1, 'two'] }),
      / a: input\.list\[1\]: .*, got "two" \(string\)$/,
    );
    assert.throws(() => validateInput('a', schema, null), / a: input: .*, got null \(null\)$/);
    assert.throws(() => validateInput('a', schema, [1]), / a: input: .*, got \[1\] \(array\)$/);
  });

  it('lists at most five problems and shortens long values', () => {
    const many = z.object(
      Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((k) => [k, z.string()])),
    );
    assert.throws(
      () => validateInput('x', many, {}),
      (err: Error) => err.message.split('; ').length === 5,
    );
    assert.throws(
      () => validateInput('x', schema, { node: 'n', reason: 'r'.repeat(500) }),
      (err: Error) => err.message.includes('...') && err.message.length < 400,
    );
  });
});

describe('Kubernetes activity input', () => {
  // [activity, input, the field the failure must name]
  const cases: [keyof typeof kubernetes, unknown, string][] = [
    ['quarantineNode', null, 'input'],
    ['quarantineNode', { node: 'gpu-1', workflowId: 'w' }, 'input.reason'],
    ['quarantineNode', { node: 'gpu-1', workflowId: 'w', reason: 'r', runId: '' }, 'input.runId'],
    ['quarantineNode', { node: 'GPU 1', workflowId: 'w', reason: 'r' }, 'input.node'],
    ['releaseNode', { node: 'gpu-1' }, 'input.workflowId'],
    ['releaseNode', { node: 'gpu-1', workflowId: 'w'.repeat(1001) }, 'input.workflowId'],
    ['drainNode', { node: 'gpu-1', workflowId: 'w', concurrency: 0 }, 'input.concurrency'],
    ['drainNode', { node: 'gpu-1', workflowId: 'w', concurrency: 1.5 }, 'input.concurrency'],
    ['drainNode', { node: 'gpu-1', workflowId: 'w', force: 'yes' }, 'input.force'],
    [
      'drainNode',
      { node: 'gpu-1', workflowId: 'w', deadlineSeconds: 7 * 86_400 + 1 },
      'input.deadlineSeconds',
    ],
    ['drainNode', { node: 'gpu-1', workflowId: 'w', podFilter: [] }, 'input.podFilter'],
    [
      'drainNode',
      { node: 'gpu-1', workflowId: 'w', podFilter: { namespaces: [''] } },
      'input.podFilter.namespaces',
    ],
    [
      'drainNode',
      { node: 'gpu-1', workflowId: 'w', podFilter: { labelSelector: '' } },
      'input.podFilter.labelSelector',
    ],
    ['restartPods', { node: 'gpu-1' }, 'input.podNames'],
    ['restartPods', { node: 'gpu-1', podNames: [] }, 'input.podNames'],
    ['restartPods', { node: 'gpu-1', podNames: ['p'], namespace: 'Bad_NS' }, 'input.namespace'],
    [
      'restartPods',
      { node: 'gpu-1', labelSelector: 'app=x', deadlineSeconds: 86_401 },
      'input.deadlineSeconds',
    ],
    ['getNode', {}, 'input.node'],
    ['podsOnNode', { node: 42 }, 'input.node'],
    ['listGpuNodes', { labelKeys: 'zone' }, 'input.labelKeys'],
    ['recordRemediation', { node: 'gpu-1', at: 'yesterday' }, 'input.at'],
    ['recordRemediation', { node: 'gpu-1' }, 'input.at'],
  ];
  for (const [activity, input, field] of cases) {
    it(`${activity}(${JSON.stringify(input)}) names ${field}`, async () => {
      const call = kubernetes[activity] as (input: unknown) => Promise<unknown>;
      await assert.rejects(call(input), invalidInput(activity, field));
    });
  }

  it('lets good input through to the API (listGpuNodes without input too)', async () => {
    await assert.rejects(kubernetes.listGpuNodes(), reachedApi);
    await assert.rejects(kubernetes.restartPods({ node: 'gpu-1', labelSelector: 'app=x' }), reachedApi);
    await assert.rejects(
      kubernetes.recordRemediation({ node: 'gpu-1', at: '2026-12-02T10:00:00Z' }),
      reachedApi,
    );
  });

  // drainNode's input, generated valid, then one field made invalid: the failure names that field,
  // whichever it is and whatever the other fields hold; the valid input always gets past validation.
  const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?$/);
  const word = fc.string({ minLength: 1, maxLength: 40 });
  const validDrain = fc.record(
    {
      node: name,
      workflowId: word,
      force: fc.boolean(),
      deleteEmptyDirData: fc.boolean(),
      concurrency: fc.integer({ min: 1, max: 100 }),
      deadlineSeconds: fc.integer({ min: 1, max: 7 * 86_400 }),
      podFilter: fc.record(
        { namespaces: fc.array(word, { maxLength: 3 }), labelSelector: word },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['node', 'workflowId'] },
  );
  const badValue: Record<string, fc.Arbitrary<unknown>> = {
    node: fc.oneof(
      fc.constant(''),
      fc.constant('UPPER'),
      fc.constant('a'.repeat(254)),
      fc.integer(),
      fc.constant(null),
    ),
    workflowId: fc.oneof(
      fc.constant(''),
      fc.constant('w'.repeat(1001)),
      fc.integer(),
      fc.constant(undefined),
    ),
    force: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    deleteEmptyDirData: fc.oneof(fc.string(), fc.constant(0)),
    concurrency: fc.oneof(
      fc.integer({ max: 0 }),
      fc.integer({ min: 101 }),
      fc.double({ min: 1.1, max: 99.9, noInteger: true }),
      fc.constant(Number.NaN),
      fc.string(),
    ),
    deadlineSeconds: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 7 * 86_400 + 1 }), fc.constant('60')),
    podFilter: fc.oneof(fc.constant('all'), fc.constant([]), fc.record({ namespaces: fc.constant(['']) })),
  };

  it('drainNode: a valid input passes; one bad field is named, whichever it is', async () => {
    await fc.assert(
      fc.asyncProperty(
        validDrain,
        fc.constantFrom(...Object.keys(badValue)),
        fc.gen(),
        async (input, field, gen) => {
          await assert.rejects(kubernetes.drainNode(input), reachedApi);
          const bad = { ...input, [field]: gen(() => badValue[field]!) };
          await assert.rejects(kubernetes.drainNode(bad), invalidInput('drainNode', `input.${field}`));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('node agent and remediation support activity input', () => {
  const agent = createNodeAgentActivities({
    clusterId: 'lab-1',
    node: 'gpu-1',
    runner: {
      run: () => Promise.reject(new Error('ran a tool')),
    },
  });
  const target = { clusterId: 'lab-1', node: 'gpu-1' };

  it('agentResetGpu names input.gpu for any GPU index that is not a non-negative integer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.integer({ max: -1 }), fc.double({ noInteger: true }), fc.string(), fc.constant(null)),
        async (gpu) => {
          await assert.rejects(
            agent.agentResetGpu({ ...target, gpu: gpu as number }),
            invalidInput('agentResetGpu', 'input.gpu'),
          );
        },
      ),
    );
    await assert.rejects(agent.agentResetGpu({ ...target, gpu: 0 }), /ran a tool/);
  });

  it('agentDiag names input.level for a level other than 1 to 4', async () => {
    for (const level of [0, 5, 2.5, '3', undefined]) {
      await assert.rejects(
        agent.agentDiag({ ...target, level: level as 1 }),
        invalidInput('agentDiag', 'input.level'),
      );
    }
  });

  /** Support activities whose Temporal client throws on first use: validation passed. */
  const support = createRemediationSupportActivities({
    kc: unusedKubeConfig(),
    client: new Proxy({} as Client, {
      get: () => {
        throw new Error(REACHED_API);
      },
    }),
    clusterId: 'lab-1',
    taskQueue: 'unused',
  });
  const badNode = fc.oneof(
    fc.constant(''),
    fc.constant('Not_A_Name'),
    fc.constant('a'.repeat(254)),
    fc.integer(),
    fc.constant(null),
    fc.constant(undefined),
  );

  it('budgetReportFailure names the field', async () => {
    await assert.rejects(
      support.budgetReportFailure({ node: '' }),
      invalidInput('budgetReportFailure', 'input.node'),
    );
  });

  it('budgetAcquire names input.node or input.remediationTimestamps before asking the budget', async () => {
    await fc.assert(
      fc.asyncProperty(badNode, async (node) => {
        await assert.rejects(
          support.budgetAcquire({ node: node as string, remediationTimestamps: [] }),
          invalidInput('budgetAcquire', 'input.node'),
        );
      }),
    );
    for (const remediationTimestamps of [
      undefined,
      null,
      '1700000000000',
      [1.5],
      [Number.NaN],
      ['2026-11-20'],
    ]) {
      await assert.rejects(
        support.budgetAcquire({ node: 'gpu-1', remediationTimestamps: remediationTimestamps as number[] }),
        invalidInput('budgetAcquire', 'input.remediationTimestamps'),
      );
    }
    await assert.rejects(
      support.budgetAcquire({ node: 'gpu-1', remediationTimestamps: [Date.parse('2026-11-20T00:00:00Z')] }),
      reachedApi,
    );
  });

  it('budgetRelease names input.node before asking the budget', async () => {
    await fc.assert(
      fc.asyncProperty(badNode, async (node) => {
        await assert.rejects(
          support.budgetRelease({ node: node as string }),
          invalidInput('budgetRelease', 'input.node'),
        );
      }),
    );
    await assert.rejects(support.budgetRelease({ node: 'gpu-1' }), reachedApi);
  });

  it('checkCapacity names input.node before listing pods', async () => {
    const capacity = createCapacityActivities(stubApi());
    await fc.assert(
      fc.asyncProperty(badNode, async (node) => {
        await assert.rejects(
          capacity.checkCapacity({ node: node as string }),
          invalidInput('checkCapacity', 'input.node'),
        );
      }),
    );
    await assert.rejects(capacity.checkCapacity({ node: 'gpu-1' }), reachedApi);
  });
});
