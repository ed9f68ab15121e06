import { filesOfRefusal } from '../config/named-files.ts';
import { isNamedKind, type StoreKind } from './store-layout.ts';
import { withoutSections, type ConfigDocument } from './store-objects.ts';

/**
 * What the refusals of one composition for files they name wait for: the keys of the store objects
 * refused so (`MERGED_DOCUMENT` for the merged document refused as a whole) and the absolute paths
 * of the files they name, whose change may end those refusals with no change of the store.
 */
export interface FileWait {
  readonly keys: ReadonlySet<string>;
  readonly files: readonly string[];
}

/** The key a `FileWait` holds for the merged document refused as a whole, not one store object. */
export const MERGED_DOCUMENT = '';

/** No refusal waits for a file. */
export const NO_FILE_WAIT: FileWait = { keys: new Set(), files: [] };

/**
 * The files the store object `name` of `kind` names, as it stands in `merged` (the document it was
 * refused in), beside the file's top-level settings as `validateStoreObjects` checks it; routes
 * name none. Falls back to `whole` (the files of the document) if the object does not parse alone.
 */
export function filesOfObject(path: string, file: ConfigDocument, merged: ConfigDocument, kind: StoreKind, name: string, whole: readonly string[]): readonly string[] {
  if (!isNamedKind(kind)) return [];
  const value = (merged[kind] as Record<string, unknown> | undefined)?.[name];
  return filesOfRefusal(path, JSON.stringify({ ...withoutSections(file), [kind]: { [name]: value } })) ?? whole;
}
