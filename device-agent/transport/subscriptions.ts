import { OutpostError } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import { isFailure, reasonName, type ProtocolVersion } from './reason-codes.js';
import type { Qos } from './types.js';

/** Sends one SUBSCRIBE and resolves with the SUBACK's codes, one per filter in order [MQTT 5.0 §3.9.3]. */
export type SubscribeOnce = (filters: readonly string[], qos: Qos) => Promise<number[]>;

/**
 * The filters the broker granted us, so a reconnect that finds no session (broker restarted, session expired) can
 * subscribe to them again: with Session Present 0 the broker holds none of them [MQTT 5.0 §3.2.2.1.1].
 */
export class Subscriptions {
  private readonly filters = new Map<string, Qos>();

  get size(): number {
    return this.filters.size;
  }

  /** Records the filters SUBACK granted; throws naming those it refused (e.g. 0x87 Not authorized). */
  granted(filters: readonly string[], qos: Qos, codes: readonly number[], version: ProtocolVersion = 5): void {
    const refused = filters.flatMap((filter, i) => {
      const code = codes[i] ?? 0x80;
      if (isFailure(code)) return [`${filter}: ${reasonName(code, version)}`];
      this.filters.set(filter, qos);
      return [];
    });
    if (refused.length > 0) {
      throw new OutpostError('TRANSPORT_SUBSCRIBE_REJECTED', `the broker refused ${refused.join('; ')}`, {
        details: { filters, codes },
      });
    }
  }

  remove(filters: readonly string[]): void {
    for (const filter of filters) this.filters.delete(filter);
  }

  /** Subscribes to everything again, one SUBSCRIBE per QoS; refusals and failures are logged, not thrown. */
  async restore(subscribe: SubscribeOnce, log: Logger): Promise<void> {
    const byQos = new Map<Qos, string[]>();
    for (const [filter, qos] of this.filters) byQos.set(qos, [...(byQos.get(qos) ?? []), filter]);
    for (const [qos, filters] of byQos) {
      try {
        const codes = await subscribe(filters, qos);
        const refused = filters.filter((_, i) => isFailure(codes[i] ?? 0x80));
        if (refused.length > 0) log.warn({ refused, codes }, 'broker refused filters on re-subscribe');
      } catch (error) {
        log.warn({ err: error, filters }, 're-subscribe failed; the next reconnect tries again');
      }
    }
  }
}
