import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  DECISION_ALIASES,
  DECISIONS,
  nodeNameSchema,
  OperatorError,
  phaseSchema,
  resolveDecision,
  type DecisionAlias,
  type DecisionName,
  type OperatorErrorKind,
  type OperatorService,
} from '../client/operator-client.js';
import { HttpError } from './http-error.js';

/**
 * Operator actions over HTTP, for chat-ops: the same actions as the CLI, on the webhook's server and
 * behind its credentials; every route, reads included, needs the `operator` scope. The identity
 * recorded in the workflow history is the authenticated caller (the bearer token's or HMAC key's
 * name); a body that names someone (`by`) is refused with 400, so that nobody can act in another's
 * name and no client believes it did.
 */

/** Routes of the operator actions. */
export const OPERATOR_ROUTES = Object.freeze({
  list: '/v1/remediations',
  node: '/v1/remediations/:node',
  /** approve, reject, mark-repaired, release, retry; and `retry-drain`, an alias of retry. */
  decision: (name: DecisionName | DecisionAlias) => `/v1/remediations/:node/${name}`,
  pause: '/v1/automation/pause',
  resume: '/v1/automation/resume',
  resetBreaker: '/v1/automation/reset-breaker',
});

export interface OperatorRoutesOptions {
  readonly operator: OperatorService;
  /**
   * `release` of a node a drill cordoned (src/client/drill-release.ts): the answer when a drill's
   * record is on the node, undefined when none is; it throws OperatorError as the operator does.
   * Without it, release goes to the node's remediation only.
   */
  readonly releaseDrill?: (node: string) => Promise<string | undefined>;
}

/** Every operator route needs the `operator` scope (checked by authenticate.ts before the handler). */
const OPERATOR = { config: { scope: 'operator' as const } };

const STATUS: Record<OperatorErrorKind, number> = {
  invalid: 400,
  'not-found': 404,
  refused: 409,
  unavailable: 503,
};

const paramsSchema = z.object({ node: nodeNameSchema });
const bodySchema = z.strictObject({
  reason: z
    .string()
    .trim()
    .min(1, 'reason must not be empty')
    .max(1000, 'reason is at most 1000 characters')
    .optional(),
});
const flag = z.enum(['true', 'false', '1', '0', '']).transform((v) => v === 'true' || v === '1' || v === '');
const listQuerySchema = z.strictObject({
  all: flag.optional(),
  phase: phaseSchema.optional(),
  node: nodeNameSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

class BadRequest extends Error {}

/** Like Promise.all for two, but waits for both to settle before rejecting with the first failure. */
async function settledBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const at = i.path.length > 0 ? `${where}.${i.path.join('.')}` : where;
    return `${at}: ${i.message}`;
  });
  throw new BadRequest(problems.join('; '));
}

/** The body of an action: optional, `{ "reason"?: string }`; a `by` field is refused. */
function actionBody(request: FastifyRequest): { reason?: string } {
  const body: unknown = request.body ?? {};
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'by' in body) {
    throw new BadRequest(
      `body.by is not accepted: the identity recorded is the authenticated caller (${request.caller ?? 'unknown'}), ` +
        'taken from the credential',
    );
  }
  return parse(bodySchema, body, 'body');
}

/**
 * Registers the operator routes (a fastify plugin). Register it inside the scope that authenticates
 * requests (authenticate.ts), so that `request.caller` is set and the `operator` scope checked before
 * a handler runs.
 *
 * Answers: 200 with the action's result; 400 bad node name or body; 401 (the scope's) missing or
 * wrong credentials; 403 a credential without the `operator` scope, or none configured on the server;
 * 404 no remediation for the node; 409 the workflow refused (its validator's message, which says what
 * the node accepts now) or the node's remediation has ended (404 and 409 say what to do); 503 Temporal
 * or the control worker not answering (the server's error handler answers it without details).
 */
export function operatorRoutes(app: FastifyInstance, options: OperatorRoutesOptions): Promise<void> {
  const { operator, releaseDrill } = options;

  /** Runs a handler with the refusals and errors every operator route shares. */
  const guarded =
    (handler: (request: FastifyRequest, caller: string) => Promise<unknown>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return reply.code(200).send(await handler(request, request.caller ?? 'unknown'));
      } catch (err) {
        if (err instanceof BadRequest) return reply.code(400).send({ error: err.message });
        if (!(err instanceof OperatorError)) throw err;
        const status = STATUS[err.kind];
        if (status >= 500) throw new HttpError(status, `operator action: ${err.message}`);
        request.log.info({ caller: request.caller, error: err.message }, 'operator action not done');
        return reply.code(status).send({ error: err.message });
      }
    };

  const names = [...Object.keys(DECISIONS), ...Object.keys(DECISION_ALIASES)] as (
    DecisionName | DecisionAlias
  )[];
  for (const route of names) {
    // An alias answers as the decision it stands for.
    const name = resolveDecision(route);
    app.post(
      OPERATOR_ROUTES.decision(route),
      OPERATOR,
      guarded(async (request, caller) => {
        const { node } = parse(paramsSchema, request.params, 'params');
        const { reason } = actionBody(request);
        // A drill's cordon has no remediation to signal: the reaper reverts it once the drill's run is closed.
        const drill = name === 'release' ? await releaseDrill?.(node) : undefined;
        if (drill !== undefined) {
          request.log.info({ caller, node, action: name, reason }, 'release of a drill cordon');
          return { node, action: name, by: caller, ...(reason !== undefined && { reason }), result: drill };
        }
        const result = await operator.decide(node, name, {
          by: caller,
          ...(reason !== undefined && { reason }),
        });
        request.log.info({ caller, node, action: name, reason }, 'operator decision accepted');
        return { node, action: name, by: caller, ...(reason !== undefined && { reason }), result };
      }),
    );
  }

  for (const paused of [true, false]) {
    app.post(
      paused ? OPERATOR_ROUTES.pause : OPERATOR_ROUTES.resume,
      OPERATOR,
      guarded(async (request, caller) => {
        const { reason } = actionBody(request);
        const answer = await operator.setPaused(paused, {
          by: caller,
          ...(reason !== undefined && { reason }),
        });
        request.log.info({ caller, paused, reason }, 'automation pause changed');
        return answer;
      }),
    );
  }

  app.post(
    OPERATOR_ROUTES.resetBreaker,
    OPERATOR,
    guarded(async (request, caller) => {
      const { reason } = actionBody(request);
      const budget = await operator.resetBreaker({ by: caller, ...(reason !== undefined && { reason }) });
      request.log.info({ caller, reason }, 'fleet breaker reset');
      return { by: caller, ...(reason !== undefined && { reason }), budget };
    }),
  );

  app.get(
    OPERATOR_ROUTES.list,
    OPERATOR,
    guarded(async (request) => {
      const q = parse(listQuerySchema, request.query ?? {}, 'query');
      // Both settle before the answer: no call is left running against a request already answered.
      const [remediations, budget] = await settledBoth(
        operator.list({
          ...(q.all !== undefined && { all: q.all }),
          ...(q.phase !== undefined && { phase: q.phase }),
          ...(q.node !== undefined && { node: q.node }),
          ...(q.limit !== undefined && { limit: q.limit }),
        }),
        operator.budget(),
      );
      return { remediations, budget };
    }),
  );

  app.get(
    OPERATOR_ROUTES.node,
    OPERATOR,
    guarded(async (request) => {
      const { node } = parse(paramsSchema, request.params, 'params');
      return operator.node(node);
    }),
  );
  return Promise.resolve();
}
