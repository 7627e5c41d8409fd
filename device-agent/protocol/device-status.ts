import * as z from 'zod';
import { jobIdSchema, thingNameSchema } from './ids.js';

/**
 * What travels on Outpost's own topics (topics.ts, `outpostTopics`). Only the fields the fleet relies on are fixed
 * here; the agent adds more (its full status: active models, deployments, disk, memory) and readers keep them.
 */

/**
 * `outpost/things/{thing}/status`, retained. The agent publishes `connected: true` with its status on connect and on
 * every change; the broker publishes the last will, `{"thing": …, "connected": false}`, when the connection drops
 * without a DISCONNECT (MQTT 3.1.1 §3.1.2.5), so the retained message reads "offline" until the agent is back.
 */
export const deviceStatusSchema = z.looseObject({
  thing: thingNameSchema,
  connected: z.boolean(),
});
export type DeviceStatus = z.infer<typeof deviceStatusSchema>;

/** The last-will payload for `thing`: retained, QoS 1. */
export function offlineStatusPayload(thing: string): string {
  return JSON.stringify({ thing, connected: false });
}

/**
 * `outpost/things/{thing}/events`: one JSON object per event, not retained, e.g.
 * `{"type":"deployment.step","timestamp":1700000000,"jobId":"deploy-1","step":"verifying"}`. `type` is dotted and
 * stable; `timestamp` is seconds since the epoch like every Jobs message.
 */
export const deviceEventSchema = z.looseObject({
  type: z.string().regex(/^[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*$/, 'a dotted event type such as deployment.step'),
  timestamp: z.number().int().nonnegative(),
  jobId: jobIdSchema.optional(),
});
export type DeviceEvent = z.infer<typeof deviceEventSchema>;
