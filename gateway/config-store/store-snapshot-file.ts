import { readFileSync } from 'node:fs';
import { writeFileAtomically } from '../../src/atomic-file.ts';
import { errorMessage } from '../../src/errors.ts';
import { storeIdentity } from './store-layout.ts';
import type { StoreListing } from './store-source.ts';

/** The last-known-good file as written: the store it came from and its raw entries (re-validated when read). */
interface SnapshotFile {
  readonly format: 1;
  readonly url: string;
  readonly revision: string;
  readonly savedAt: string;
  readonly entries: Record<string, string>;
}

/** Where the last-known-good snapshot goes when `configStore.snapshot` is not set: beside the config file. */
export function defaultSnapshotPath(configPath: string): string {
  return `${configPath}.store-snapshot.json`;
}

/**
 * Writes an applied listing atomically (a temporary file in the same folder, then a rename), so
 * that a crash mid-write leaves the previous snapshot whole. Raw values are kept, not the merged
 * result: reading re-validates them with the schema of the gateway that reads.
 */
export async function writeStoreSnapshot(path: string, url: string, listing: StoreListing): Promise<void> {
  const content: SnapshotFile = { format: 1, url, revision: listing.revision, savedAt: new Date().toISOString(), entries: Object.fromEntries(listing.entries) };
  await writeFileAtomically(path, `${JSON.stringify(content)}\n`);
}

/**
 * The snapshot at `path` when it exists, is readable and is of the store `url` names
 * (`storeIdentity`); otherwise undefined and why. Read synchronously, once at start, so that its
 * last good values are in place before the store's first listing is composed.
 */
export function readStoreSnapshot(path: string, url: string): { listing: StoreListing } | { listing: undefined; reason: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { listing: undefined, reason: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}` };
  }
  try {
    const content = JSON.parse(text) as Partial<SnapshotFile>;
    if (content.format !== 1 || typeof content.revision !== 'string' || typeof content.entries !== 'object' || content.entries === null) return { listing: undefined, reason: `${path} is not a config store snapshot` };
    if (typeof content.url !== 'string' || storeIdentity(content.url) !== storeIdentity(url)) return { listing: undefined, reason: `${path} holds a snapshot of ${String(content.url)}, not of ${url}` };
    const entries = new Map(Object.entries(content.entries).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
    return { listing: { revision: content.revision, entries, receivedAt: Date.now() } };
  } catch (error) {
    return { listing: undefined, reason: `${path} is not JSON: ${errorMessage(error)}` };
  }
}
