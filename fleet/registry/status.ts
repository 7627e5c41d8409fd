import * as z from 'zod';
import { deviceStatusSchema } from '../../device-agent/protocol/index.js';
import type { ThingStatusUpdate } from '../store/index.js';

/**
 * A device's status message (`outpost/things/{thing}/status`, retained; its last will says `connected: false`) as
 * the registry records it. The protocol fixes only `thing` and `connected`; what the agent adds (device-agent/
 * status.ts: host, active, health) is read when present and well-formed, and a message that is not even the fixed
 * part is refused with the reason, counted and logged by the caller, never fatal.
 */
const finite = z.number(); // zod 4 refuses Infinity and NaN by default
/** A figure JSON may have turned into null (NaN): kept as absent, so one odd figure does not refuse the message. */
const absentIfNull = finite
  .nullish()
  .transform((v) => v ?? undefined)
  .optional();
/** Every per-version report names its model and version within these bounds. */
const modelVersion = { model: z.string().max(128), version: z.string().max(64) };

const statusSchema = deviceStatusSchema.extend({
  host: z
    .looseObject({
      arch: z.string().max(32),
      profile: z.string().max(64).optional(),
      cpuProfile: z.string().max(64).optional(),
      agentVersion: z.string().max(64).optional(),
      onnxruntimeVersion: z.string().max(64).optional(),
    })
    .optional(),
  active: z
    .array(
      z.looseObject({
        ...modelVersion,
        variant: z.string().max(64).optional(),
        backend: z.string().max(16).optional(),
        role: z.string().max(16).optional(),
        trafficPercent: finite.optional(),
      }),
    )
    .max(256)
    .optional(),
  health: z
    .array(
      z.looseObject({
        ...modelVersion,
        requests: finite,
        errors: finite,
        p50Ms: finite.optional(),
        p99Ms: finite.optional(),
      }),
    )
    .max(256)
    .optional(),
  drift: z
    .array(
      z.looseObject({
        ...modelVersion,
        samples: finite,
        drifting: z.boolean(),
        scores: z
          .array(
            z.looseObject({ feature: z.string().max(256), stat: z.string().max(16), value: finite, threshold: finite }),
          )
          .max(64),
      }),
    )
    .max(256)
    .optional(),
  shadows: z
    .array(
      z.looseObject({
        ...modelVersion,
        percent: finite,
        compared: finite,
        shadowErrors: finite,
        agreement: absentIfNull,
        exactMatch: absentIfNull,
        meanCosine: absentIfNull,
        // null: a NaN or infinity on one side only (the agent's JSON has no Infinity).
        maxAbsDiff: finite.nullable(),
        nonFiniteMismatches: finite.default(0),
        productionP50Ms: absentIfNull,
        shadowP50Ms: absentIfNull,
      }),
    )
    .max(256)
    .optional(),
  guardrails: z
    .array(
      z.looseObject({
        ...modelVersion,
        requests: finite,
        errors: finite,
        errorRate: finite,
        p50Ms: finite.optional(),
        p99Ms: finite.optional(),
        elapsedSeconds: finite,
        windowSeconds: finite,
      }),
    )
    .max(256)
    .optional(),
});

/** Keeps the listed keys whose value is defined: a looseObject's unknown keys stay out of the registry. */
function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Pick<T, K> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out as Pick<T, K>;
}

/** Status messages are small; a bigger one is refused before parsing. */
export const MAX_STATUS_BYTES = 256 * 1024; // bytes

export type StatusParse = { ok: true; update: ThingStatusUpdate } | { ok: false; reason: string };

export function parseStatus(topicThing: string, payload: Buffer, atMs: number): StatusParse {
  if (payload.length > MAX_STATUS_BYTES)
    return { ok: false, reason: `${payload.length} bytes, over ${MAX_STATUS_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  const parsed = statusSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `${issue?.path.join('.') ?? '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  const s = parsed.data;
  // A device may only speak for itself: the topic names it (the broker's ACL confines each device to its topics).
  if (s.thing !== topicThing) return { ok: false, reason: `the message names ${s.thing}, the topic ${topicThing}` };
  const { host } = s;
  return {
    ok: true,
    update: {
      name: s.thing,
      connected: s.connected,
      atMs,
      ...(host === undefined
        ? {}
        : {
            target: {
              arch: host.arch,
              ...(host.profile === undefined ? {} : { profile: host.profile }),
              ...(host.cpuProfile === undefined ? {} : { cpuProfile: host.cpuProfile }),
            },
            ...(host.agentVersion === undefined ? {} : { agentVersion: host.agentVersion }),
            ...(host.onnxruntimeVersion === undefined ? {} : { onnxruntimeVersion: host.onnxruntimeVersion }),
          }),
      ...(s.active === undefined
        ? {}
        : {
            models: s.active.map((m) => ({
              model: m.model,
              version: m.version,
              ...(m.variant === undefined ? {} : { variant: m.variant }),
              ...(m.backend === undefined ? {} : { backend: m.backend }),
              ...(m.role === undefined ? {} : { role: m.role }),
              ...(m.trafficPercent === undefined ? {} : { trafficPercent: m.trafficPercent }),
            })),
          }),
      ...(s.health === undefined
        ? {}
        : {
            health: s.health.map((h) => ({
              model: h.model,
              version: h.version,
              requests: h.requests,
              errors: h.errors,
              ...(h.p50Ms === undefined ? {} : { p50Ms: h.p50Ms }),
              ...(h.p99Ms === undefined ? {} : { p99Ms: h.p99Ms }),
            })),
          }),
      ...(s.drift === undefined
        ? {}
        : {
            drift: s.drift.map((d) => ({
              model: d.model,
              version: d.version,
              samples: d.samples,
              drifting: d.drifting,
              scores: d.scores.map(({ feature, stat, value, threshold }) => ({ feature, stat, value, threshold })),
            })),
          }),
      ...(s.shadows === undefined
        ? {}
        : {
            shadows: s.shadows.map((x) => ({
              ...pick(x, ['agreement', 'exactMatch', 'meanCosine', 'productionP50Ms', 'shadowP50Ms']),
              model: x.model,
              version: x.version,
              percent: x.percent,
              compared: x.compared,
              shadowErrors: x.shadowErrors,
              maxAbsDiff: x.maxAbsDiff,
              nonFiniteMismatches: x.nonFiniteMismatches,
            })),
          }),
      ...(s.guardrails === undefined
        ? {}
        : {
            guardrails: s.guardrails.map((g) => ({
              ...pick(g, ['p50Ms', 'p99Ms']),
              model: g.model,
              version: g.version,
              requests: g.requests,
              errors: g.errors,
              errorRate: g.errorRate,
              elapsedSeconds: g.elapsedSeconds,
              windowSeconds: g.windowSeconds,
            })),
          }),
    },
  };
}
