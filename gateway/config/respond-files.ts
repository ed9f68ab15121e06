import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { AccessFileIssue } from './access-files.ts';
import type { ErrorPageSettings, ErrorsSettings, GatewayConfig, MiddlewareConfig } from './types.ts';

/** The largest `respond.bodyFile` or `errors` page: its text is held in memory by every worker and sent whole. */
export const RESPOND_BODY_FILE_MAX_BYTES = 1024 * 1024;

/**
 * A `respond.bodyFile`'s bytes as read at configuration load, sent as they are (an image, a page in
 * any encoding). Private, so `/api/config` and the reload fingerprint see only the size and a digest.
 */
export class RespondFileBody {
  readonly #bytes: Buffer;
  /** SHA-256 of the bytes: changed contents under the same path are changed settings. */
  readonly sha256: string;
  readonly size: number;

  constructor(bytes: Buffer) {
    this.#bytes = bytes;
    this.sha256 = createHash('sha256').update(bytes).digest('hex');
    this.size = bytes.length;
  }

  /** The file's bytes. */
  get bytes(): Buffer {
    return this.#bytes;
  }
}

/**
 * Reads the `bodyFile` of every `respond` middleware and the pages of every `errors` middleware (a
 * relative path from the configuration file's folder) into their `fileBody` and `body`, byte for byte, so that a missing, unreadable or oversized file
 * refuses the configuration with its path and the reason instead of failing requests later. Read
 * again on every load, so a reload picks up the file's new text.
 */
export function readRespondFiles(config: GatewayConfig, configPath: string): { config: GatewayConfig; issues: AccessFileIssue[] } {
  const base = dirname(configPath);
  const issues: AccessFileIssue[] = [];
  let middlewares: Map<string, MiddlewareConfig> | undefined;
  for (const [name, definition] of config.middlewares) {
    if (definition.kind === 'errors') {
      const pages = readErrorPages(definition.settings, base, ['middlewares', name, 'errors', 'pages'], issues);
      if (pages) (middlewares ??= new Map(config.middlewares)).set(name, { kind: 'errors', settings: { ...definition.settings, pages } });
      continue;
    }
    if (definition.kind !== 'respond' || definition.settings.bodyFile === undefined) continue;
    const absolute = resolve(base, definition.settings.bodyFile);
    const at = ['middlewares', name, 'respond', 'bodyFile'];
    try {
      const read = readBodyFile(absolute);
      if (typeof read === 'string') {
        issues.push({ path: at, message: read });
        continue;
      }
      const fileBody = new RespondFileBody(read);
      (middlewares ??= new Map(config.middlewares)).set(name, { kind: 'respond', settings: { ...definition.settings, fileBody } });
    } catch (error) {
      issues.push({ path: at, message: `cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
    }
  }
  return { config: middlewares ? { ...config, middlewares } : config, issues };
}

/** The `errors` pages with their files read, or undefined when one cannot be (its issue added to `issues`, under `at` and its key). */
function readErrorPages(settings: ErrorsSettings, base: string, at: readonly string[], issues: AccessFileIssue[]): ErrorPageSettings[] | undefined {
  const pages: ErrorPageSettings[] = [];
  for (const page of settings.pages) {
    const absolute = resolve(base, page.file);
    const where = [...at, page.key];
    try {
      const read = readBodyFile(absolute);
      if (typeof read === 'string') issues.push({ path: where, message: read });
      else pages.push({ ...page, body: new RespondFileBody(read) });
    } catch (error) {
      issues.push({ path: where, message: `cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
    }
  }
  return pages.length === settings.pages.length ? pages : undefined;
}

/**
 * The bytes of the regular file at `path`, never more than `RESPOND_BODY_FILE_MAX_BYTES` + 1 of them
 * read, or why it cannot be a body. A device, a FIFO or a procfs file has no size to check (`/dev/zero`
 * would be read until memory runs out, a FIFO would block the load until a writer came); a file
 * that grew past the limit after its size was read is caught by the bounded read. Throws the
 * system's error (ENOENT, EACCES, EISDIR) for a file it cannot open or read.
 */
function readBodyFile(path: string): Buffer | string {
  // O_NONBLOCK: opening a FIFO that has no writer returns at once instead of waiting for one; a regular file ignores it.
  const descriptor = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = fstatSync(descriptor);
    if (stats.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
    if (!stats.isFile()) return `${path}: not a regular file (a device or a FIFO has no size to check)`;
    const tooLarge = (size: string) => `${path}: ${size} bytes, more than a body file may hold (${RESPOND_BODY_FILE_MAX_BYTES})`;
    if (stats.size > RESPOND_BODY_FILE_MAX_BYTES) return tooLarge(String(stats.size));
    const bytes = Buffer.alloc(RESPOND_BODY_FILE_MAX_BYTES + 1);
    let length = 0;
    while (length < bytes.length) {
      const count = readSync(descriptor, bytes, length, bytes.length - length, null);
      if (count === 0) break;
      length += count;
    }
    if (length > RESPOND_BODY_FILE_MAX_BYTES) return tooLarge('more than that many');
    return Buffer.from(bytes.subarray(0, length));
  } finally {
    closeSync(descriptor);
  }
}
