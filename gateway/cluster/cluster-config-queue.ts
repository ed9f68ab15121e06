import type { Logger } from '../../src/logger.ts';
import { parseConfig, parseRefusedConfigSettled, type GatewayConfig } from '../config/index.ts';

/** One configuration text from the primary (a `switchboard:config` message), with the identity the worker echoes. */
export interface ConfigText {
  readonly path: string;
  readonly text: string;
  /** The text the gateway started with, when `text` is another: where a worker starting now listens. */
  readonly listenText?: string;
  readonly workers: number;
  readonly sequence: number;
  readonly digest: string;
}

/** What becomes of a text: its configuration, why it is refused, or that a newer text replaces it untried. */
export type ConfigVerdict =
  | { readonly outcome: 'taken'; readonly config: GatewayConfig }
  | { readonly outcome: 'refused'; readonly error: unknown }
  | { readonly outcome: 'superseded' };

/**
 * True when a text is not to be tried: the primary has sent a newer one since (`latest`, the highest
 * sequence received), which is next in the queue. The primary no longer runs the older one: taken,
 * it would take effect (listeners rebound…) just before the newer one.
 */
export function isSuperseded(sequence: number, latest: number): boolean {
  return sequence < latest;
}

/**
 * A worker's configuration texts, decided and handed to `settle` one at a time, in the order the
 * primary sent them (`receive`), each once the previous one's `settle` is done. A text with a newer
 * one behind it is `superseded`, whether it would parse or not; a text refused at once whose
 * certificate pairs may be mid-renewal is parsed again as they settle (`parseRefusedConfigSettled`),
 * and is superseded if a newer text comes during that wait. After `stop`, a text refused at once or
 * waiting is dropped with no verdict (the worker drains), and nothing more is queued.
 */
export class WorkerConfigQueue {
  private queue: Promise<void> = Promise.resolve();
  /** The highest sequence received: a text below it is superseded. */
  private latest = 0;
  /** The text waiting for a certificate pair to settle: aborted when a newer one comes or on `stop`. */
  private waiting: AbortController | undefined;
  private stopped = false;

  constructor(
    private readonly settle: (text: ConfigText, verdict: ConfigVerdict) => void | Promise<void>,
    private readonly log: Logger,
  ) {}

  /** Queues `text` behind the ones received before; a text waiting for its certificate pairs is superseded by it. */
  receive(text: ConfigText): void {
    if (this.stopped) return;
    this.latest = Math.max(this.latest, text.sequence);
    this.waiting?.abort();
    this.queue = this.queue
      .then(async () => {
        const verdict = await this.decide(text);
        if (verdict) await this.settle(text, verdict);
      })
      .catch((error: unknown) => this.log.error({ err: error }, 'applying the configuration failed'));
  }

  /** Takes no more texts and drops one waiting for its certificate pairs; resolves once the text being settled is done. */
  stop(): Promise<void> {
    this.stopped = true;
    this.waiting?.abort();
    return this.queue;
  }

  /**
   * Parses the text as the primary did (`parseConfigSettled`): the primary took it, maybe once a
   * certificate pair it names had settled, and the worker reads that pair a moment later, possibly
   * mid-renewal (the certificate new, the key still old). Such a pair is read again until it settles,
   * so that the worker takes the text the primary runs instead of keeping its own; waited for behind
   * a newer text, it would hold that one back by up to the maximum wait.
   */
  private async decide(text: ConfigText): Promise<ConfigVerdict | undefined> {
    if (isSuperseded(text.sequence, this.latest)) return { outcome: 'superseded' };
    let refusal: unknown;
    try {
      return { outcome: 'taken', config: parseConfig(text.path, text.text) };
    } catch (error) {
      refusal = error;
    }
    if (this.stopped) return undefined;
    const dropped = new AbortController();
    this.waiting = dropped;
    const verdict = await parseRefusedConfigSettled(text.path, text.text, refusal, { log: this.log, signal: dropped.signal }).then(
      (config): ConfigVerdict => ({ outcome: 'taken', config }),
      (error: unknown): ConfigVerdict => ({ outcome: 'refused', error }),
    );
    this.waiting = undefined;
    if (!dropped.signal.aborted) return verdict;
    if (this.stopped) return undefined;
    this.log.debug('a newer configuration came from the primary while a certificate pair this one names settled; the newer one is applied instead');
    return { outcome: 'superseded' };
  }
}
