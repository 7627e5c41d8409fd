import { statfs } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { messageOf } from '../../runtime/errors.js';
import { detectHostTarget, onnxruntimeVersion } from '../../runtime/host/index.js';
import { logger } from '../../runtime/log.js';
import { OUTPOST_VERSION } from '../../runtime/version.js';
import { readJson, writeJsonAtomic } from './atomic-files.js';
import type { DeploymentState } from './deployment-records.js';

/**
 * What `outpost agent status` prints and the periodic status message carries. Written to `<dataDir>/status.json`
 * on every change, so the local command needs no connection to the running agent.
 */
/** Requests, errors and latency of one served version: what the guardrail watch and the health report both count. */
const SERVING_FIGURES = z.object({
  model: z.string(),
  version: z.string(),
  requests: z.number(),
  errors: z.number(),
  errorRate: z.number(),
  p50Ms: z.number().optional(),
  p99Ms: z.number().optional(),
});

/** Drift of one served version against its baseline (runtime/monitor): the worst scores. */
const DRIFT_FIGURES = z.object({
  model: z.string(),
  version: z.string(),
  samples: z.number(),
  drifting: z.boolean(),
  scores: z.array(
    z.object({ feature: z.string(), stat: z.enum(['psi', 'ks']), value: z.number(), threshold: z.number() }),
  ),
});

export const agentStatusSchema = z.object({
  thing: z.string(),
  connected: z.boolean(),
  pid: z.number().int(),
  startedAt: z.string(),
  updatedAt: z.string(),
  uptimeSeconds: z.number(),
  /** How often the running agent rewrites this file at the latest: a file much older belongs to a dead agent. */
  statusIntervalSeconds: z.number().positive().optional(),
  http: z.string().optional(),
  active: z.array(
    z.object({
      model: z.string(),
      version: z.string(),
      variant: z.string(),
      backend: z.enum(['native', 'wasm']),
      /** production (answers callers) or shadow (only compared). */
      role: z.enum(['production', 'shadow']).optional(),
      /** Share of production traffic, in percent, when several versions serve (canary). */
      trafficPercent: z.number().optional(),
    }),
  ),
  /** Shadow comparisons running now (SageMaker-style shadow tests): agreement, divergence, latency. */
  shadows: z
    .array(
      z.object({
        model: z.string(),
        version: z.string(),
        percent: z.number(),
        compared: z.number(),
        shadowErrors: z.number(),
        agreement: z.number().optional(),
        /** Share of string outputs (a pipeline's OCR `text`) exactly equal to production's, 0–1. */
        exactMatch: z.number().optional(),
        meanCosine: z.number().optional(),
        // JSON has no Infinity: a NaN/Inf on one side only (runtime/tensor/agreement.ts) is written as null.
        maxAbsDiff: z.number().or(z.null().transform(() => Infinity)),
        nonFiniteMismatches: z.number().default(0),
        productionP50Ms: z.number().optional(),
        shadowP50Ms: z.number().optional(),
      }),
    )
    .default([]),
  /** Versions under guardrail watch after a deployment (baking): what has been counted so far. */
  guardrails: z.array(SERVING_FIGURES.extend({ elapsedSeconds: z.number(), windowSeconds: z.number() })).default([]),
  /**
   * What this device is, for the fleet's registry: the target profile the compiler's host detection gives here
   * (runtime/host), the agent's and ONNX Runtime's versions.
   */
  host: z
    .object({
      arch: z.string(),
      profile: z.string().optional(),
      cpuProfile: z.string().optional(),
      agentVersion: z.string(),
      onnxruntimeVersion: z.string().optional(),
    })
    .optional(),
  /** Serving health per production version over the last minute (requests, errors, p50/p99 of successful calls). */
  health: z.array(SERVING_FIGURES).default([]),
  /** Drift of each monitored version against its baseline: absent when the monitor is off. */
  drift: z.array(DRIFT_FIGURES).optional(),
  /** Data capture counters (sampled, written, dropped …) when capture is on. */
  capture: z.record(z.string(), z.number()).optional(),
  /** Asynchronous inference over MQTT counters (received, answered, failed …) when it is on. */
  async: z.record(z.string(), z.number()).optional(),
  deployments: z.array(
    z.object({
      jobId: z.string(),
      model: z.string(),
      version: z.string(),
      state: z.string(),
      bytesTotal: z.number(),
      bytesReceived: z.number(),
      bytesFetched: z.number(),
      reason: z.string().optional(),
    }),
  ),
  disk: z.object({ path: z.string(), freeBytes: z.number(), totalBytes: z.number() }),
  memory: z.object({ rssBytes: z.number(), systemFreeBytes: z.number(), systemTotalBytes: z.number() }),
  spool: z.object({ entries: z.number(), dropped: z.number(), refused: z.number().optional() }),
});
export type AgentStatus = z.infer<typeof agentStatusSchema>;

export const STATUS_FILE = 'status.json';

export function deploymentSummary(s: DeploymentState): AgentStatus['deployments'][number] {
  const state = s.step === 'done' || s.step === 'reporting' ? (s.outcome?.status ?? s.step) : s.step;
  return {
    jobId: s.jobId,
    model: s.model,
    version: s.version,
    state,
    bytesTotal: s.bytesTotal,
    bytesReceived: s.bytesReceived,
    bytesFetched: s.bytesFetched,
    ...(s.outcome !== undefined && s.outcome.status !== 'SUCCEEDED'
      ? { reason: `${s.outcome.code}: ${s.outcome.message}` }
      : {}),
  };
}

export async function diskUsage(path: string): Promise<AgentStatus['disk']> {
  const s = await statfs(path);
  return { path, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

export function memoryUsage(): AgentStatus['memory'] {
  return { rssBytes: process.memoryUsage.rss(), systemFreeBytes: freemem(), systemTotalBytes: totalmem() };
}

export async function writeStatus(dataDir: string, status: AgentStatus): Promise<void> {
  await writeJsonAtomic(join(dataDir, STATUS_FILE), status);
}

export async function readStatus(dataDir: string): Promise<AgentStatus | undefined> {
  return readJson(join(dataDir, STATUS_FILE), agentStatusSchema);
}

/** The status message's `host`: an architecture no profile covers still reports what it is, without a profile. */
export function hostReport(): NonNullable<AgentStatus['host']> {
  const versions = {
    agentVersion: OUTPOST_VERSION,
    ...(onnxruntimeVersion() === undefined ? {} : { onnxruntimeVersion: onnxruntimeVersion() }),
  };
  try {
    const { arch, profile, cpuProfile } = detectHostTarget();
    return { arch, profile, cpuProfile, ...versions };
  } catch (error) {
    logger('agent').warn({ error: messageOf(error) }, 'no target profile for this host');
    return { arch: process.arch, ...versions };
  }
}
