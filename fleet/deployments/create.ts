import { checkName } from '../protocol-errors.js';
import { defaultStreamId } from '../deploy-artifact.js';
import { OutpostError } from '../../runtime/errors.js';
import { matches } from '../registry/query.js';
import type {
  ArtifactRecord,
  DeploymentDocumentOptions,
  DeploymentRecord,
  FleetStore,
  NewExecution,
  ThingRecord,
} from '../store/index.js';
import { type RolloutRequest, type RolloutStrategy, buildRollout, isPaced, planWaves } from '../rollouts/plan.js';
import { documentFor } from './document.js';
import { canChoose, chooseArtifact } from './fit.js';

/**
 * `fleet deploy`: checks everything before writing anything (artifacts exist and are one model version, each target
 * once; the group or things exist; somebody is targeted), picks each known thing's artifact, and writes the
 * deployment and every execution in one transaction. A thing whose reported target nothing fits is REJECTED with the
 * reason; a thing that has not reported a target yet is QUEUED and gets its choice when it does.
 */
export interface DeploymentRequest {
  readonly artifacts: readonly string[];
  readonly group?: string;
  readonly things?: readonly string[];
  readonly id?: string;
  /** A rollout (strategy, rates, abort and retry settings; fleet/rollouts/); a stored strategy is taken as it is. */
  readonly rollout?: RolloutRequest;
  readonly strategy?: RolloutStrategy;
  readonly options?: DeploymentDocumentOptions;
}

export async function createDeployment(
  store: FleetStore,
  request: DeploymentRequest,
  nowMs: number,
): Promise<DeploymentRecord> {
  const artifacts = await loadArtifacts(store, request.artifacts);
  const first = artifacts[0];
  if (first === undefined) throw new OutpostError('INVALID_ARGUMENT', 'a deployment needs at least one artifact');
  const things = await resolveTargets(store, request);
  const id = request.id === undefined ? defaultStreamId(first.name, first.version) : checkName('job id', request.id);
  const options = request.options ?? {};
  const documents: Record<string, Record<string, unknown>> = {};
  for (const artifact of artifacts) documents[artifact.sha256] = { ...(await documentFor(artifact, options)) };
  const rollout = request.strategy ?? buildRollout(request.rollout ?? {}, id);
  let executions = things.map((thing) => newExecution(thing, artifacts));
  let waves: { size: number; bakeMs: number }[] | undefined;
  if (isPaced(rollout)) {
    // Waves over the things that can run it (a REJECTED one has ended already), spread by reported target; every
    // execution is held until its wave is released by the rollout controller.
    const runnable = executions.filter((e) => e.status === 'QUEUED');
    const plan = planWaves(
      rollout,
      runnable.map((e) => ({
        name: e.thing,
        stratum: things.find((t) => t.name === e.thing)?.target.profile ?? 'unknown',
      })),
    );
    waves = plan.waves.map((w) => ({ size: w.size, bakeMs: w.bakeMs }));
    executions = executions.map((e) =>
      e.status === 'QUEUED' ? { ...e, wave: plan.membership.get(e.thing) ?? 0, released: false } : e,
    );
  }
  return store.createDeployment(
    {
      id,
      model: first.name,
      version: first.version,
      target: request.group === undefined ? { things: things.map((t) => t.name) } : { group: request.group },
      strategy: rollout,
      options,
      artifacts: artifacts.map((a) => a.sha256),
      documents,
      nowMs,
      ...(waves === undefined ? {} : { waves }),
    },
    executions,
  );
}

/** A thing's execution as it is created (or added when it joins a dynamic group later). */
export function newExecution(
  thing: Pick<ThingRecord, 'name' | 'target'>,
  artifacts: readonly ArtifactRecord[],
): NewExecution {
  if (!canChoose(thing.target, artifacts)) return { thing: thing.name, status: 'QUEUED' };
  const fit = chooseArtifact(thing.target, artifacts);
  if (!fit.ok) {
    return {
      thing: thing.name,
      status: 'REJECTED',
      statusDetails: { reasonCode: 'ARTIFACT_TARGET_MISMATCH', reason: fit.reason },
    };
  }
  return {
    thing: thing.name,
    status: 'QUEUED',
    artifact: fit.artifact.sha256,
    fit: artifacts.length === 1 && thing.target.profile === undefined ? 'only' : fit.fit,
  };
}

async function loadArtifacts(store: FleetStore, shas: readonly string[]): Promise<ArtifactRecord[]> {
  const unique = [...new Set(shas)];
  const found: ArtifactRecord[] = [];
  for (const sha of unique) {
    const artifact = await store.getArtifact(sha);
    if (artifact === undefined) {
      throw new OutpostError('ARTIFACT_NOT_FOUND', `no stored artifact ${sha}: upload it first (POST /v1/artifacts)`, {
        details: { sha256: sha },
      });
    }
    found.push(artifact);
  }
  const [first] = found;
  for (const a of found) {
    if (first !== undefined && (a.name !== first.name || a.version !== first.version)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `one deployment carries one model version for several targets; got ${first.name}@${first.version} and ${a.name}@${a.version}`,
        { details: { artifacts: found.map((f) => `${f.name}@${f.version} ${f.target.profile}`) } },
      );
    }
  }
  const profiles = found.map((a) => a.target.profile);
  const repeated = profiles.find((p, i) => profiles.indexOf(p) !== i);
  if (repeated !== undefined) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `two artifacts target ${repeated}: a deployment carries one per target`,
      {
        details: { targets: profiles },
      },
    );
  }
  return found;
}

/** The things a request names: a group (static members, or a dynamic query over the registry) or a list. */
export async function resolveTargets(
  store: FleetStore,
  request: Pick<DeploymentRequest, 'group' | 'things'>,
): Promise<ThingRecord[]> {
  if ((request.group === undefined) === (request.things === undefined)) {
    throw new OutpostError('INVALID_ARGUMENT', 'a deployment targets either a group or a list of things', {
      details: { accepted: ['group', 'things'] },
    });
  }
  if (request.group !== undefined) {
    const group = await store.getGroup(request.group);
    if (group === undefined) {
      const known = (await store.listGroups()).map((g) => g.name);
      throw new OutpostError('GROUP_NOT_FOUND', `no group ${request.group}; groups: ${known.join(', ') || 'none'}`, {
        details: { group: request.group, groups: known },
      });
    }
    const things =
      group.kind === 'static'
        ? await store.listThings(group.things)
        : (await store.listThings()).filter((t) => matches(t, group.where));
    if (things.length === 0) {
      throw new OutpostError(
        'TARGET_EMPTY',
        `group ${group.name} has no things${group.kind === 'dynamic' ? ' matching it yet' : ''}`,
        {
          details: { group: group.name },
        },
      );
    }
    return things;
  }
  const names = [...new Set(request.things ?? [])];
  if (names.length === 0) throw new OutpostError('TARGET_EMPTY', 'the deployment names no things');
  const things = await store.listThings(names);
  const unknown = names.filter((n) => !things.some((t) => t.name === n));
  if (unknown.length > 0) {
    throw new OutpostError(
      'THING_NOT_FOUND',
      `unknown thing${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: a thing appears when its agent first connects, or register it with \`outpost fleet thing <name> --attr k=v\``,
      { details: { things: unknown } },
    );
  }
  return things;
}
