import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `text` to `path` atomically: a temporary file in the same folder (private to this user),
 * then a rename, so that a crash mid-write leaves the previous file whole. The folder is made when
 * missing. Used by the last-known-good snapshots of the config store and of the registries.
 */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, path);
}
