import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';

/** A lifecycle hook: a command run with a timeout, like CodeDeploy's lifecycle event hooks. */
const hookSchema = z.object({
  command: z.string().min(1),
  timeoutSeconds: z.number().positive().default(60),
});

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
    http: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8080) })
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
        /** Blocks asked for per GetStream request (and so in flight at once): bounds memory. */
        blocksPerRequest: z.number().int().min(1).max(128).default(32),
        /** A request whose blocks have not all arrived by then is asked again for the missing ones. */
        requestTimeoutMs: z.number().int().positive().default(5000),
        /** Consecutive requests that bring nothing new before the download fails. */
        maxStalls: z.number().int().positive().default(12),
        /** Stream payload encoding: CBOR carries blocks as raw bytes, JSON as base64 (a third larger). */
        encoding: z.enum(['json', 'cbor']).default('cbor'),
      })
      .default({ blocksPerRequest: 32, requestTimeoutMs: 5000, maxStalls: 12, encoding: 'cbor' }),
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
