import type { RawInstance } from '../instance-codec.ts';
import { parseInstanceKey, parseSingleServiceKey, type InstanceKey } from './etcd-key.ts';

const UTF8 = new TextDecoder();

/** Ignored keys remembered so each is reported once; past this many, further ones are not reported (keys that churn under the prefix would otherwise grow the set for ever). */
export const MAX_REPORTED_IGNORED_KEYS = 1_000;

/** A key and its value as etcd returns them (etcd3's `IKeyValue` fits). */
export interface EtcdKeyValue {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** One watch event (etcd3's `IEvent` fits). */
export interface EtcdEvent {
  readonly type: 'Put' | 'Delete';
  readonly kv: EtcdKeyValue;
}

interface StoredEntry {
  readonly key: string;
  readonly value: Uint8Array;
}

/**
 * The instance keys under one prefix as last listed and then watched, grouped by service: keys
 * `<prefix>/<service>/<instanceId>`, or `<prefix>/<instanceId>` when `service` says the prefix is
 * that one service's node. Keys of any other shape are left out and reported once each through
 * `onIgnoredKey`. Pure bookkeeping: no I/O, no clock.
 */
export class EtcdRegistryState {
  private readonly services = new Map<string, Map<string, StoredEntry>>();
  private readonly reportedIgnored = new Set<string>();

  constructor(
    private readonly prefix: string,
    private readonly onIgnoredKey: (key: string) => void = () => undefined,
    private readonly service?: string,
  ) {}

  /**
   * Replaces everything with a full listing. Returns every service whose set may differ: those
   * listed now and those that were known before but are gone (they must be published empty).
   */
  replace(kvs: Iterable<EtcdKeyValue>): Set<string> {
    const changed = new Set(this.services.keys());
    this.services.clear();
    for (const kv of kvs) {
      const service = this.put(kv);
      if (service !== undefined) changed.add(service);
    }
    return changed;
  }

  /** Applies events in revision order and returns the services they touched. */
  apply(events: Iterable<EtcdEvent>): Set<string> {
    const touched = new Set<string>();
    for (const event of events) {
      const service = event.type === 'Put' ? this.put(event.kv) : this.delete(event.kv.key);
      if (service !== undefined) touched.add(service);
    }
    return touched;
  }

  /** The entries of `service` as `ProviderStore.publishRaw` takes them; empty for an unknown service. */
  entries(service: string): RawInstance[] {
    const instances = this.services.get(service);
    if (!instances) return [];
    return [...instances].map(([name, entry]) => ({ service, name, key: entry.key, data: entry.value }));
  }

  /** True while `service` has at least one key (valid or not): etcd has no service node, so a service without keys is gone. */
  has(service: string): boolean {
    return this.services.has(service);
  }

  /** Services that currently have at least one key. */
  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  private put(kv: EtcdKeyValue): string | undefined {
    const text = UTF8.decode(kv.key);
    const parsed = this.parse(text);
    if (!parsed) return undefined;
    let instances = this.services.get(parsed.service);
    if (!instances) {
      instances = new Map();
      this.services.set(parsed.service, instances);
    }
    instances.set(parsed.instanceId, { key: text, value: kv.value });
    return parsed.service;
  }

  private delete(key: Uint8Array): string | undefined {
    const parsed = this.parse(UTF8.decode(key));
    if (!parsed) return undefined;
    const instances = this.services.get(parsed.service);
    if (!instances?.delete(parsed.instanceId)) return undefined;
    // An empty service is forgotten here; the caller still publishes its (empty) set once.
    if (instances.size === 0) this.services.delete(parsed.service);
    return parsed.service;
  }

  private parse(text: string): InstanceKey | undefined {
    const parsed = this.service === undefined ? parseInstanceKey(this.prefix, text) : parseSingleServiceKey(this.prefix, this.service, text);
    if (!parsed && this.reportedIgnored.size < MAX_REPORTED_IGNORED_KEYS && !this.reportedIgnored.has(text)) {
      this.reportedIgnored.add(text);
      this.onIgnoredKey(text);
    }
    return parsed;
  }
}
