import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { IOT_CORE_MAX_MESSAGE_BYTES } from './protocol/index.js';

/** A lifecycle hook: a command run with a timeout, like CodeDeploy's lifecycle event hooks. */
const hookSchema = z.object({
  command: z.string().min(1),
  timeoutSeconds: z.number().positive().default(60),
});

const CAPTURE_CONFIG_DEFAULTS = Object.freeze({
  samplePercent: 0, // percent of production calls
  maxFileBytes: 1024 * 1024, // bytes per capture file before it is sealed for upload
  maxTotalBytes: 64 * 1024 * 1024, // bytes in <dataDir>/capture; oldest files deleted beyond
  tensors: 'inline' as const,
  upload: true,
});

const captureSchema = z
  .object({
    samplePercent: z.number().min(0).max(100).default(CAPTURE_CONFIG_DEFAULTS.samplePercent),
    maxFileBytes: z.number().int().positive().default(CAPTURE_CONFIG_DEFAULTS.maxFileBytes),
    maxTotalBytes: z.number().int().positive().default(CAPTURE_CONFIG_DEFAULTS.maxTotalBytes),
    /** Tensors base64 inside each line, or as .npy side files next to it. */
    tensors: z.enum(['inline', 'files']).default(CAPTURE_CONFIG_DEFAULTS.tensors),
    /** AES-256-GCM key for encryption at rest: 64 hex characters, base64 of 32 bytes, or 32 raw bytes. */
    encryptionKeyFile: z.string().optional(),
    /** Upload sealed files to `outpost/things/{thing}/capture` when online (else they stay, size-capped, on disk). */
    upload: z.boolean().default(CAPTURE_CONFIG_DEFAULTS.upload),
  })
  .strict()
  .refine((c) => c.maxFileBytes <= c.maxTotalBytes, { message: 'maxFileBytes must not exceed maxTotalBytes' });

const guardrailsSchema = z
  .object({
    /** Seconds after a deployment activates during which its version is watched. */
    windowSeconds: z.number().positive().default(600),
    /** Calls counted before any judgement. */
    minRequests: z.number().int().positive().default(50),
    /** Failed calls / calls (0–1) beyond which the deployment rolls back. */
    maxErrorRate: z.number().min(0).max(1).default(0.05),
    /** p99 latency (ms) beyond which the deployment rolls back; absent: no latency alarm. */
    maxP99Ms: z.number().positive().optional(),
  })
  .strict();

const MONITOR_CONFIG_DEFAULTS = Object.freeze({
  enabled: true,
  samplePercent: 100, // percent of production calls binned into the drift window
  window: 1000, // calls in the sliding window (it slides by a quarter)
  thresholds: Object.freeze({ psi: 0.25, ks: 0.2 }), // PSI > 0.25: a significant shift (rule of thumb)
  captureOnDrift: Object.freeze({ samplePercent: 100, seconds: 600 }), // capture's rate while a drift alarm is young
});

/** Model Monitor on the device (runtime/monitor): drift of live traffic against each artifact's baseline.json. */
const monitorSchema = z
  .object({
    enabled: z.boolean().default(MONITOR_CONFIG_DEFAULTS.enabled),
    samplePercent: z.number().min(0).max(100).default(MONITOR_CONFIG_DEFAULTS.samplePercent),
    window: z.number().int().min(8).default(MONITOR_CONFIG_DEFAULTS.window),
    thresholds: z
      .object({
        /** Population stability index per feature above which the version is drifting. */
        psi: z.number().positive().default(MONITOR_CONFIG_DEFAULTS.thresholds.psi),
        /** Kolmogorov–Smirnov statistic (0–1) per feature above which the version is drifting. */
        ks: z.number().positive().max(1).default(MONITOR_CONFIG_DEFAULTS.thresholds.ks),
      })
      .strict()
      .default(MONITOR_CONFIG_DEFAULTS.thresholds),
    /** On a drift alarm, data capture (when on) samples at this rate for this long, to keep what explains it. */
    captureOnDrift: z
      .object({
        samplePercent: z.number().min(0).max(100).default(MONITOR_CONFIG_DEFAULTS.captureOnDrift.samplePercent),
        seconds: z.number().positive().default(MONITOR_CONFIG_DEFAULTS.captureOnDrift.seconds),
      })
      .strict()
      .default(MONITOR_CONFIG_DEFAULTS.captureOnDrift),
  })
  .strict();

const SERVING_CONFIG_DEFAULTS = Object.freeze({
  concurrency: 4, // calls run at once per served version
  maxQueue: 256, // calls waiting per served version; one more is a 503
});

const servingSchema = z
  .object({
    concurrency: z.number().int().positive().default(SERVING_CONFIG_DEFAULTS.concurrency),
    maxQueue: z.number().int().nonnegative().default(SERVING_CONFIG_DEFAULTS.maxQueue),
    /** Merge queued calls into one batch (models with a batch dimension); absent: one call per run. */
    batching: z
      .object({
        /** Calls merged into one run, at most. */
        maxBatchSize: z.number().int().min(1),
        /** How long the first queued call waits for others to join its batch; ms. */
        maxQueueDelayMs: z.number().nonnegative(),
      })
      .strict()
      .optional(),
  })
  .strict();

const ASYNC_CONFIG_DEFAULTS = Object.freeze({
  /** On by default: the broker's ACL decides who may publish requests (docs/mosquitto-acl.md). */
  enabled: true,
  maxQueue: 64, // requests per model accepted and not yet answered; one more is answered OVERLOADED at once
  maxMessageBytes: IOT_CORE_MAX_MESSAGE_BYTES, // bytes per request and per answer (IoT Core's message limit)
});

/** Asynchronous inference over MQTT (device-agent/serving/async-infer.ts, docs/serving-operations.md). */
const asyncSchema = z
  .object({
    enabled: z.boolean().default(ASYNC_CONFIG_DEFAULTS.enabled),
    maxQueue: z.number().int().positive().default(ASYNC_CONFIG_DEFAULTS.maxQueue),
    /** At least 2 KiB: an answer keeps 1 KiB of it for the correlation and the error body. */
    maxMessageBytes: z
      .number()
      .int()
      .min(2048)
      .max(256 * 1024 * 1024)
      .default(ASYNC_CONFIG_DEFAULTS.maxMessageBytes),
  })
  .strict();

/** A retry policy (runtime/retry.ts): jittered exponential backoff; `maxAttempts` absent means no limit. */
const retryPolicySchema = z
  .object({
    minMs: z.number().int().nonnegative(),
    maxMs: z.number().int().positive(),
    jitter: z.number().min(0).max(1).default(0.3),
    /** Tries of a retryable failure, the first included; network outages are waited out and not counted. */
    maxAttempts: z.number().int().positive().optional(),
  })
  .strict()
  .refine((p) => p.minMs <= p.maxMs, { message: 'minMs must not exceed maxMs' });

/** How each of the agent's retries backs off (device-agent/README.md, "Retries"). */
export const RETRY_DEFAULTS = Object.freeze({
  /** A download that failed (stalled stream, bad index): tried this many times in all, then the job fails. */
  download: { minMs: 1_000, maxMs: 60_000, jitter: 0.3, maxAttempts: 4 },
  /** The final UpdateJobExecution: until it is delivered (the job's outcome must reach the fleet). */
  report: { minMs: 1_000, maxMs: 30_000, jitter: 0.3 },
  /** StartNextPendingJobExecution unanswered (no jobs service on the broker): asked again, less and less often. */
  startNext: { minMs: 5_000, maxMs: 300_000, jitter: 0.3 },
  /** One spooled message the broker did not take (quota, busy): a few tries, then the next flush. */
  spool: { minMs: 500, maxMs: 5_000, jitter: 0.3, maxAttempts: 3 },
  /** A capture upload pass that failed: a few tries, then the next interval or reconnect. */
  upload: { minMs: 5_000, maxMs: 60_000, jitter: 0.3, maxAttempts: 3 },
});

const retrySchema = z
  .object({
    download: retryPolicySchema.default(RETRY_DEFAULTS.download),
    report: retryPolicySchema.default(RETRY_DEFAULTS.report),
    startNext: retryPolicySchema.default(RETRY_DEFAULTS.startNext),
    spool: retryPolicySchema.default(RETRY_DEFAULTS.spool),
    upload: retryPolicySchema.default(RETRY_DEFAULTS.upload),
  })
  .strict();

export const agentConfigSchema = z
  .object({
    /** The thing name: MQTT client id and `$aws/things/{thing}` topic segment. */
    thing: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'an AWS IoT thing name ([a-zA-Z0-9:_-], max 128)'),
    broker: z
      .object({
        url: z.string().regex(/^(mqtts?|wss?):\/\//, 'mqtt://, mqtts://, ws:// or wss://'),
        /** "mqtt" (MQTT.js, any broker) or "aws-iot" (aws-iot-device-sdk-v2, MQTT 5, for AWS IoT Core). */
        transport: z.enum(['mqtt', 'aws-iot']).default('mqtt'),
        ca: z.string().optional(),
        cert: z.string().optional(),
        key: z.string().optional(),
      })
      .optional(),
    dataDir: z.string().default('/var/lib/outpost'),
    /** Public keys (PEM files) whose artifact signatures are trusted. With any, signatures are required. */
    trustKeys: z.array(z.string()).default([]),
    /** Accept unsigned artifacts when no trust keys are configured (default: refuse). */
    allowUnsigned: z.boolean().default(false),
    /** Models this device may run; a job for any other is REJECTED. Empty: any model. */
    models: z.array(z.string()).default([]),
    /** The local inference endpoint (runtime/server): loopback TCP, or a unix socket; optionally behind a token. */
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Listen on this unix socket instead of TCP (file permissions then decide who may call). */
        socket: z.string().min(1).optional(),
        /** A file whose first line is the bearer token every route but the health checks requires. */
        tokenFile: z.string().min(1).optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080 }),
    /** Installed versions kept per model (the active one included), for rollback. */
    keepVersions: z.number().int().min(2).default(3),
    statusIntervalSeconds: z.number().positive().default(60),
    spool: z
      .object({
        maxEntries: z.number().int().positive().default(1000),
        maxBytes: z
          .number()
          .int()
          .positive()
          .default(4 * 1024 * 1024),
      })
      .default({ maxEntries: 1000, maxBytes: 4 * 1024 * 1024 }),
    download: z
      .object({
        /**
         * Blocks in flight at once (asked for, not yet arrived), over as many GetStream requests as the 128 KB
         * per-request limit needs. 64 keeps loopback delivery near the broker's own rate (bench/delivery.ts); the
         * blocks wait in the broker and the sockets, not in the agent's memory.
         */
        blocksPerRequest: z.number().int().min(1).max(128).default(64),
        /** A request whose blocks have not all arrived by then is asked again for the missing ones. */
        requestTimeoutMs: z.number().int().positive().default(5000),
        /** Consecutive requests that bring nothing new before the download fails. */
        maxStalls: z.number().int().positive().default(12),
        /** Stream payload encoding: CBOR carries blocks as raw bytes, JSON as base64 (a third larger). */
        encoding: z.enum(['json', 'cbor']).default('cbor'),
      })
      .default({ blocksPerRequest: 64, requestTimeoutMs: 5000, maxStalls: 12, encoding: 'cbor' }),
    /** Backoff of every retry the agent makes (runtime/retry.ts); see RETRY_DEFAULTS. */
    retry: retrySchema.default(RETRY_DEFAULTS),
    /** IoT Jobs requests (start-next, describe, update) unanswered this long fail with TIMEOUT (then retried). */
    jobsRequestTimeoutMs: z.number().int().positive().default(10_000),
    /** Free space kept beyond what a deployment needs. */
    diskMarginBytes: z
      .number()
      .int()
      .nonnegative()
      .default(64 * 1024 * 1024),
    hooks: z
      .object({
        beforeInstall: hookSchema.optional(),
        afterActivate: hookSchema.optional(),
        validate: hookSchema.optional(),
      })
      .default({}),
    /** Backend preference for serving ("auto": native, falling back to WASM). */
    backend: z.enum(['auto', 'native', 'wasm']).default('auto'),
    /** Timed runs per candidate variant when an artifact leaves the choice to the device. */
    benchmarkIterations: z.number().int().positive().default(50),
    /**
     * Variants fetched and self-tested at install from a `files`-layout stream, best-ranked first (the others are
     * fetched only if these all fail their self-test); with more than one, the passing ones are benchmarked and the
     * fastest kept. 1: the rank-1 variant only, whatever the artifact's `selection`.
     */
    benchmarkVariants: z.number().int().positive().default(1),
    /** Data capture (runtime/server/capture/writer.ts, docs/serving-operations.md): off unless samplePercent > 0. */
    capture: captureSchema.default(CAPTURE_CONFIG_DEFAULTS),
    /** Drift of live inputs and outputs against each artifact's baseline (runtime/monitor): on by default. */
    monitor: monitorSchema.default(MONITOR_CONFIG_DEFAULTS),
    /** Alarms after a deployment (device-agent/deployment/guardrails.ts): off when absent. */
    guardrails: guardrailsSchema.optional(),
    /** How each served version takes requests (runtime/server/scheduling/direct.ts, batching.ts). */
    serving: servingSchema.default(SERVING_CONFIG_DEFAULTS),
    async: asyncSchema.default(ASYNC_CONFIG_DEFAULTS),
    /** `outpost tune --out` file(s): per model, batching and threads (and variant/backend for the tuned version). */
    tuning: z.string().optional(),
  })
  .strict();

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
export type HookName = keyof AgentConfig['hooks'];

export function parseAgentConfig(value: unknown, where = 'agent config'): AgentConfig {
  const parsed = agentConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new OutpostError('CONFIG_INVALID', `${where}: ${issues}`, { details: { issues: parsed.error.issues } });
  }
  return parsed.data;
}

export async function readAgentConfig(path: string): Promise<AgentConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  try {
    return JSON.parse(text) as AgentConfigInput;
  } catch (error) {
    throw new OutpostError('CONFIG_INVALID', `${path} is not valid JSON: ${messageOf(error)}`, { cause: error });
  }
}
