import { Range, type Etcd3, type IKeyValue } from 'etcd3';

/** Keys per range request when listing: pages of instance entries stay a few hundred kilobytes (the client takes any size, see `createEtcdClient`). */
export const ETCD_LIST_PAGE_SIZE = 1_000;

/** Every key under a prefix as of one revision. */
export interface PrefixListing {
  /** The store revision all pages were read at; watching from `revision + 1` misses nothing. */
  readonly revision: string;
  readonly kvs: readonly IKeyValue[];
}

const ZERO_BYTE = Buffer.from([0]);

/**
 * Reads every key under `keyPrefix` in pages of `pageSize`, all pinned to the revision of the
 * first page, so the result is one consistent snapshot (Kubernetes lists the same way). Rejects
 * with etcd's "required revision has been compacted" if a compaction overtakes the pages.
 */
export async function listPrefix(client: Etcd3, keyPrefix: string, pageSize = ETCD_LIST_PAGE_SIZE): Promise<PrefixListing> {
  const whole = Range.prefix(keyPrefix);
  const kvs: IKeyValue[] = [];
  let start = whole.start;
  let revision: string | undefined;
  for (;;) {
    const query = client.getAll().inRange(new Range(start, whole.end)).limit(pageSize);
    if (revision !== undefined) query.revision(revision);
    const page = await query.exec();
    revision ??= page.header.revision;
    kvs.push(...page.kvs);
    const last = page.kvs.at(-1);
    if (!page.more || !last) return { revision, kvs };
    start = Buffer.concat([last.key, ZERO_BYTE]);
  }
}

/** True for the error etcd returns when a read or watch asks for a revision older than the last compaction. */
export function isCompactedError(error: unknown): boolean {
  return error instanceof Error && /compacted/i.test(error.message);
}
