import { messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { retry, type RetryPolicy } from '../runtime/retry.js';
import { SupersededError, type JobsClient } from './jobs-client.js';
import type { JobExecution } from './protocol/index.js';

const log = logger('agent.jobs');

/**
 * The agent's StartNextPendingJobExecution, asked again with backoff while unanswered (a plain broker with no jobs
 * service answers nothing, so each request ends in TIMEOUT): said once at warn, then at debug until a reply comes.
 * `wake()` (a notify-next, a reconnect) ends a backoff early, so a job is never left waiting for the timer.
 */
export class NextJobs {
  private nudge = new AbortController();
  /** The unanswered start-next was logged at warn already (once per outage of the jobs service). */
  private warned = false;

  constructor(
    private readonly jobs: JobsClient,
    private readonly policy: RetryPolicy,
    private readonly stopping: AbortSignal,
  ) {}

  wake(): void {
    this.nudge.abort();
  }

  /** The next execution (now IN_PROGRESS); undefined when none is pending or asking failed; 'again' when woken. */
  async next(): Promise<JobExecution | undefined | 'again'> {
    const nudge = new AbortController();
    this.nudge = nudge;
    try {
      const execution = await retry(() => this.jobs.startNext(), {
        policy: this.policy,
        signal: AbortSignal.any([this.stopping, nudge.signal]),
        network: 'stop', // the reconnect asks again
        onRetry: ({ error, delayMs }) => this.unanswered(messageOf(error), delayMs),
      });
      if (this.warned) log.info('the IoT Jobs service answers start-next again');
      this.warned = false;
      return execution;
    } catch (error) {
      if (this.stopping.aborted) return undefined;
      if (error instanceof SupersededError || nudge.signal.aborted) return 'again';
      log.warn({ error: messageOf(error) }, 'start-next failed; retrying on the next notification or reconnect');
      return undefined;
    }
  }

  private unanswered(error: string, delayMs: number): void {
    if (this.warned) {
      log.debug({ error, delayMs }, 'start-next unanswered; asking again');
      return;
    }
    this.warned = true;
    log.warn(
      { error, delayMs },
      'start-next unanswered (no IoT Jobs service on this broker?); asking again with backoff, logged at debug from now on',
    );
  }
}
