import type { IncomingMessage } from 'node:http';
import { rm } from 'node:fs/promises';
import * as z from 'zod';
import { jobIdSchema, thingNameSchema } from '../../device-agent/protocol/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { matches, parseQuery } from '../registry/query.js';
import type { FleetOperations } from '../service/operations.js';
import type { ArtifactRecord, FleetStore } from '../store/index.js';
import { readJson, readUpload } from './http.js';
import { inferRoute } from './infer-route.js';
import type { FleetInference } from '../infer.js';
import { rolloutView } from './rollout-view.js';
import { artifactView, deploymentView, groupView, thingView } from './views.js';

/**
 * The fleet API's routes, one table: method, path pattern, handler. Bodies are validated with zod at the edge; the
 * answer is JSON (views.ts). See fleet/api/README.md for the list with examples.
 */
export interface ApiContext {
  readonly store: FleetStore;
  readonly operations: FleetOperations;
  readonly now: () => number;
  readonly health: () => Record<string, unknown>;
  /** Asynchronous inference on a device over MQTT (fleet/infer.ts); absent: the route answers INVALID_ARGUMENT. */
  readonly inference?: Pick<FleetInference, 'infer'>;
}

type Handler = (
  ctx: ApiContext,
  req: IncomingMessage,
  params: Record<string, string>,
  query: URLSearchParams,
) => Promise<[number, unknown]>;

/** API_CreateThingGroup, thingGroupName: "Length 1–128, Pattern: [a-zA-Z0-9:_-]+". */
const groupNameSchema = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'a group name: 1–128 of [a-zA-Z0-9:_-]');
const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256');

const groupBody = z.strictObject({
  name: groupNameSchema,
  things: z.array(thingNameSchema).max(10_000).optional(),
  where: z.string().max(1024).optional(),
});
const attributesBody = z.strictObject({
  attributes: z.record(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/), z.string().max(256).nullable()),
});
const deploymentBody = z.strictObject({
  artifacts: z.array(sha256Schema).min(1).max(16),
  group: groupNameSchema.optional(),
  things: z.array(thingNameSchema).max(10_000).optional(),
  id: jobIdSchema.optional(),
  /** fleet/rollouts/: `all-at-once`, `canary:<N|P%>[,bake=<d>]`, `linear:<P%>,every=<d>`; `then` after a canary. */
  strategy: z.string().max(256).optional(),
  then: z.string().max(256).optional(),
  seed: z.string().max(128).optional(),
  /** IoT Jobs' CreateJob fields, validated with AWS's limits in fleet/rollouts/config.ts. */
  jobExecutionsRolloutConfig: z.unknown().optional(),
  abortConfig: z.unknown().optional(),
  jobExecutionsRetryConfig: z.unknown().optional(),
  timeoutConfig: z.strictObject({ inProgressTimeoutInMinutes: z.number().int().min(1).max(10_080) }).optional(),
  options: z
    .strictObject({
      rollout: z
        .strictObject({
          mode: z.enum(['replace', 'canary', 'shadow']),
          percent: z.number().min(0).max(100).optional(),
          bakeSeconds: z.number().min(0).optional(),
        })
        .optional(),
      keepVersions: z.number().int().min(1).max(100).optional(),
      notes: z.string().max(1024).optional(),
      /** The stream layout (docs/job-document.md); default files where the artifact has that stream. */
      layout: z.enum(['archive', 'files']).optional(),
      /** CreateJob timeoutConfig.inProgressTimeoutInMinutes: 1–10,080. */
      inProgressTimeoutInMinutes: z.number().int().min(1).max(10_080).optional(),
    })
    .optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || '(body)';
  throw new OutpostError('INVALID_ARGUMENT', `${field}: ${issue?.message ?? 'invalid'}`, { details: { field } });
}

async function artifactsOf(store: FleetStore, shas: readonly string[]): Promise<Map<string, ArtifactRecord>> {
  const map = new Map<string, ArtifactRecord>();
  for (const sha of shas) {
    const a = await store.getArtifact(sha);
    if (a !== undefined) map.set(sha, a);
  }
  return map;
}

/** A deployment as the API answers it: with its rollout (waves, abort, rolled-back devices); the dashboard shows the same. */
export async function describeDeployment(store: FleetStore, id: string, nowMs = Date.now()) {
  const d = await store.getDeployment(id);
  if (d === undefined) throw new OutpostError('DEPLOYMENT_NOT_FOUND', `no deployment ${id}`, { details: { id } });
  const group = d.target.group === undefined ? undefined : await store.getGroup(d.target.group);
  const executions = await store.listExecutions(id);
  // A thing is rolled back once its execution of a rollback deployment SUCCEEDED.
  const rolledBack = new Set<string>();
  for (const rollbackId of Object.values(d.rollout.rollbacks ?? {}))
    for (const e of await store.listExecutions(rollbackId)) if (e.status === 'SUCCEEDED') rolledBack.add(e.thing);
  return deploymentView(
    d,
    executions,
    await artifactsOf(store, d.artifacts),
    group?.kind === 'dynamic',
    rolloutView(d, executions, await store.listWaves(id), rolledBack, nowMs),
  );
}

const ROUTES: ReadonlyArray<readonly [string, RegExp, Handler]> = Object.freeze([
  ['GET', /^\/v1\/health$/, (ctx) => Promise.resolve([200, ctx.health()])],
  [
    'GET',
    /^\/v1\/things$/,
    async ({ store }, _req, _p, query) => {
      const groupName = query.get('group');
      let things = await store.listThings();
      if (groupName !== null) {
        const group = await store.getGroup(groupName);
        if (group === undefined)
          throw new OutpostError('GROUP_NOT_FOUND', `no group ${groupName}`, { details: { group: groupName } });
        things =
          group.kind === 'static'
            ? things.filter((t) => group.things.includes(t.name))
            : things.filter((t) => matches(t, group.where));
      }
      return [200, { things: things.map(thingView) }];
    },
  ],
  [
    'GET',
    /^\/v1\/things\/(?<name>[^/]+)$/,
    async ({ store }, _req, { name = '' }) => {
      const thing = await store.getThing(name);
      if (thing === undefined)
        throw new OutpostError('THING_NOT_FOUND', `no thing ${name}`, { details: { thing: name } });
      const executions = await store.thingExecutions(name);
      return [
        200,
        {
          ...thingView(thing),
          executions: executions.slice(-20).map((e) => ({
            jobId: e.jobId,
            status: e.status,
            statusDetails: e.statusDetails,
            versionNumber: e.versionNumber,
          })),
        },
      ];
    },
  ],
  [
    'PUT',
    /^\/v1\/things\/(?<name>[^/]+)\/attributes$/,
    async ({ store, now }, req, { name = '' }) => {
      parse(thingNameSchema, name);
      const body = parse(attributesBody, await readJson(req));
      return [200, thingView(await store.setAttributes(name, body.attributes, now()))];
    },
  ],
  ['POST', /^\/v1\/things\/(?<name>[^/]+)\/infer\/(?<model>[^/]+)$/, inferRoute],
  ['GET', /^\/v1\/groups$/, async ({ store }) => [200, { groups: (await store.listGroups()).map(groupView) }]],
  [
    'POST',
    /^\/v1\/groups$/,
    async ({ store, now }, req) => {
      const body = parse(groupBody, await readJson(req));
      if ((body.things === undefined) === (body.where === undefined)) {
        throw new OutpostError('INVALID_ARGUMENT', 'a group is either static (things) or dynamic (where)', {
          details: { accepted: ['things', 'where'] },
        });
      }
      if (body.things !== undefined) {
        const known = await store.listThings(body.things);
        const unknown = body.things.filter((t) => !known.some((k) => k.name === t));
        if (unknown.length > 0)
          throw new OutpostError(
            'THING_NOT_FOUND',
            `unknown thing${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`,
            { details: { things: unknown } },
          );
      }
      const group =
        body.things !== undefined
          ? await store.createGroup({ name: body.name, kind: 'static', things: body.things, createdMs: now() })
          : await store.createGroup({
              name: body.name,
              kind: 'dynamic',
              where: parseQuery(body.where ?? ''),
              createdMs: now(),
            });
      return [201, groupView(group)];
    },
  ],
  [
    'GET',
    /^\/v1\/groups\/(?<name>[^/]+)$/,
    async ({ store }, _req, { name = '' }) => {
      const group = await store.getGroup(name);
      if (group === undefined)
        throw new OutpostError('GROUP_NOT_FOUND', `no group ${name}`, { details: { group: name } });
      return [200, groupView(group)];
    },
  ],
  [
    'GET',
    /^\/v1\/artifacts$/,
    async ({ store }) => [200, { artifacts: (await store.listArtifacts()).map(artifactView) }],
  ],
  [
    'POST',
    /^\/v1\/artifacts$/,
    async ({ operations }, req) => {
      const path = await operations.uploadPath();
      try {
        await readUpload(req, path);
        return [201, artifactView(await operations.ingest(path))];
      } finally {
        await rm(path, { force: true });
      }
    },
  ],
  [
    'GET',
    /^\/v1\/deployments$/,
    async ({ store }) => {
      const list = await store.listDeployments();
      const out = [];
      for (const d of list)
        out.push({
          id: d.id,
          state: d.state,
          model: d.model,
          version: d.version,
          counts: await store.countExecutions(d.id),
          createdAt: new Date(d.createdMs).toISOString(),
        });
      return [200, { deployments: out }];
    },
  ],
  [
    'POST',
    /^\/v1\/deployments$/,
    async ({ store, operations }, req) => {
      const body = parse(deploymentBody, await readJson(req));
      const { inProgressTimeoutInMinutes: optionTimeout, ...options } = body.options ?? {};
      const inProgressTimeoutInMinutes = body.timeoutConfig?.inProgressTimeoutInMinutes ?? optionTimeout;
      const deployment = await operations.deploy({
        rollout: {
          ...(body.strategy === undefined ? {} : { strategy: body.strategy }),
          ...(body.then === undefined ? {} : { then: body.then }),
          ...(body.seed === undefined ? {} : { seed: body.seed }),
          ...(body.jobExecutionsRolloutConfig === undefined
            ? {}
            : { jobExecutionsRolloutConfig: body.jobExecutionsRolloutConfig }),
          ...(body.abortConfig === undefined ? {} : { abortConfig: body.abortConfig }),
          ...(body.jobExecutionsRetryConfig === undefined
            ? {}
            : { jobExecutionsRetryConfig: body.jobExecutionsRetryConfig }),
        },
        artifacts: body.artifacts,
        ...(body.group === undefined ? {} : { group: body.group }),
        ...(body.things === undefined ? {} : { things: body.things }),
        ...(body.id === undefined ? {} : { id: body.id }),
        options: {
          ...options,
          ...(inProgressTimeoutInMinutes === undefined
            ? {}
            : { inProgressTimeoutMs: inProgressTimeoutInMinutes * 60_000 }),
        },
      });
      return [201, await describeDeployment(store, deployment.id)];
    },
  ],
  [
    'GET',
    /^\/v1\/deployments\/(?<id>[^/]+)$/,
    async ({ store }, _req, { id = '' }) => [200, await describeDeployment(store, id)],
  ],
  [
    'POST',
    /^\/v1\/deployments\/(?<id>[^/]+)\/cancel$/,
    async ({ store, operations }, _req, { id = '' }, query) => {
      const rollback = query.get('rollback');
      if (rollback !== null && rollback !== 'true' && rollback !== 'false')
        throw new OutpostError('INVALID_ARGUMENT', 'rollback is true or false', { details: { field: 'rollback' } });
      await operations.cancel(id, undefined, rollback === 'true');
      return [200, await describeDeployment(store, id)];
    },
  ],
  [
    'GET',
    /^\/v1\/deployments\/(?<id>[^/]+)\/events$/,
    async ({ store }, _req, { id = '' }, query) => {
      if ((await store.getDeployment(id)) === undefined)
        throw new OutpostError('DEPLOYMENT_NOT_FOUND', `no deployment ${id}`, { details: { id } });
      const after = Number(query.get('after') ?? 0);
      const limit = Math.min(1000, Number(query.get('limit') ?? 1000));
      if (!Number.isInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1) {
        throw new OutpostError('INVALID_ARGUMENT', 'after and limit are non-negative integers');
      }
      return [200, { events: await store.deploymentEvents(id, after, limit) }];
    },
  ],
  [
    'GET',
    /^\/v1\/events$/,
    async ({ store }, _req, _p, query) => {
      const after = Number(query.get('after') ?? 0);
      const limit = Math.min(1000, Number(query.get('limit') ?? 100));
      if (!Number.isInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1) {
        throw new OutpostError('INVALID_ARGUMENT', 'after and limit are non-negative integers');
      }
      return [200, { events: await store.eventsAfter(after, limit) }];
    },
  ],
]);

export function route(
  method: string,
  path: string,
): { handler: Handler; params: Record<string, string> } | 'method' | undefined {
  let pathMatched = false;
  for (const [m, pattern, handler] of ROUTES) {
    const match = pattern.exec(path);
    if (match === null) continue;
    pathMatched = true;
    if (m !== method) continue;
    const params = Object.fromEntries(Object.entries(match.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]));
    return { handler, params };
  }
  return pathMatched ? 'method' : undefined;
}
