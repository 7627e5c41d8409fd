import * as z from 'zod';
import { OutpostError } from '../../runtime/errors.js';

/**
 * IoT Jobs' rollout, abort, retry and timeout settings, with AWS's field names and limits (CreateJob:
 * JobExecutionsRolloutConfig, ExponentialRolloutRate, RateIncreaseCriteria, AbortConfig/AbortCriteria,
 * JobExecutionsRetryConfig/RetryCriteria, TimeoutConfig), so a job described for AWS reads the same here. The CLI's
 * `--rate`, `--abort` and `--retry` take the same fields as `key=value,…` (parseSettings).
 */
export const rateIncreaseCriteriaSchema = z
  .strictObject({
    numberOfNotifiedThings: z.number().int().min(1).max(1_000_000).optional(),
    numberOfSucceededThings: z.number().int().min(1).max(1_000_000).optional(),
  })
  .refine((c) => (c.numberOfNotifiedThings === undefined) !== (c.numberOfSucceededThings === undefined), {
    message: 'exactly one of numberOfNotifiedThings, numberOfSucceededThings',
  });

export const rolloutConfigSchema = z
  .strictObject({
    maximumPerMinute: z.number().int().min(1).max(1000).optional(),
    exponentialRate: z
      .strictObject({
        baseRatePerMinute: z.number().int().min(1).max(1000),
        incrementFactor: z.number().min(1.1).max(5),
        rateIncreaseCriteria: rateIncreaseCriteriaSchema,
      })
      .optional(),
  })
  .refine(
    (c) =>
      c.exponentialRate === undefined ||
      c.maximumPerMinute === undefined ||
      c.maximumPerMinute >= c.exponentialRate.baseRatePerMinute,
    { message: 'maximumPerMinute must be at least exponentialRate.baseRatePerMinute', path: ['maximumPerMinute'] },
  );
export type RolloutConfig = z.output<typeof rolloutConfigSchema>;

/**
 * AWS's failure types, plus Outpost's DRIFT: things that succeeded whose drift monitor now reports the deployed
 * version drifting from its artifact's baseline (registry, `fleet things --drift`). ALL keeps AWS's meaning.
 */
export const ABORT_FAILURE_TYPES = Object.freeze(['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL', 'DRIFT'] as const);
export const abortCriteriaSchema = z.strictObject({
  action: z.literal('CANCEL').default('CANCEL'),
  failureType: z.enum(ABORT_FAILURE_TYPES),
  minNumberOfExecutedThings: z.number().int().min(1),
  thresholdPercentage: z.number().min(0).max(100),
});
export type AbortCriteria = z.output<typeof abortCriteriaSchema>;
export const abortConfigSchema = z.strictObject({ criteriaList: z.array(abortCriteriaSchema).min(1).max(4) });
export type AbortConfig = z.output<typeof abortConfigSchema>;

export const RETRY_FAILURE_TYPES = Object.freeze(['FAILED', 'TIMED_OUT', 'ALL'] as const);
export const retryCriteriaSchema = z.strictObject({
  failureType: z.enum(RETRY_FAILURE_TYPES),
  numberOfRetries: z.number().int().min(0).max(10),
});
export type RetryCriteria = z.output<typeof retryCriteriaSchema>;
export const retryConfigSchema = z.strictObject({ criteriaList: z.array(retryCriteriaSchema).min(1).max(2) });
export type RetryConfig = z.output<typeof retryConfigSchema>;

export const timeoutConfigSchema = z.strictObject({
  inProgressTimeoutInMinutes: z.number().int().min(1).max(10_080),
});

/** Validates with a schema, naming the first bad field (STRATEGY_INVALID). */
export function check<T>(schema: z.ZodType<T>, value: unknown, field: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [field, ...(issue?.path ?? []).map(String)].join('.');
  throw new OutpostError('STRATEGY_INVALID', `${path}: ${issue?.message ?? 'invalid'}`, {
    details: {
      field: path,
      problems: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    },
  });
}

/** `a=1,b=FAILED` → { a: 1, b: 'FAILED' }: numbers where they parse as numbers. */
export function parseSettings(text: string, field: string): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const part of text.split(',')) {
    const [key, value, ...rest] = part.trim().split('=');
    if (key === undefined || key === '' || value === undefined || value === '' || rest.length > 0 || key in out) {
      throw new OutpostError('STRATEGY_INVALID', `${field} "${text}": expected key=value,… (each key once)`, {
        details: { field, value: text },
      });
    }
    out[key] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  return out;
}

/**
 * `--rate maximumPerMinute=50` or `--rate baseRatePerMinute=5,incrementFactor=2,numberOfSucceededThings=10[,maximumPerMinute=200]`.
 */
export function parseRate(text: string): RolloutConfig {
  const {
    maximumPerMinute,
    baseRatePerMinute,
    incrementFactor,
    numberOfNotifiedThings,
    numberOfSucceededThings,
    ...rest
  } = parseSettings(text, 'rate');
  const exponential =
    baseRatePerMinute !== undefined ||
    incrementFactor !== undefined ||
    numberOfNotifiedThings !== undefined ||
    numberOfSucceededThings !== undefined;
  return check(
    rolloutConfigSchema,
    {
      ...rest,
      ...(maximumPerMinute === undefined ? {} : { maximumPerMinute }),
      ...(exponential
        ? {
            exponentialRate: {
              baseRatePerMinute,
              incrementFactor,
              rateIncreaseCriteria: {
                ...(numberOfNotifiedThings === undefined ? {} : { numberOfNotifiedThings }),
                ...(numberOfSucceededThings === undefined ? {} : { numberOfSucceededThings }),
              },
            },
          }
        : {}),
    },
    'rate',
  );
}

/** `--abort failureType=FAILED,thresholdPercentage=20,minNumberOfExecutedThings=5` (repeatable). */
export function parseAbort(texts: readonly string[]): AbortConfig {
  return check(abortConfigSchema, { criteriaList: texts.map((t) => parseSettings(t, 'abort')) }, 'abort');
}

/** `--retry failureType=FAILED,numberOfRetries=2` (repeatable). */
export function parseRetry(texts: readonly string[]): RetryConfig {
  return check(retryConfigSchema, { criteriaList: texts.map((t) => parseSettings(t, 'retry')) }, 'retry');
}
