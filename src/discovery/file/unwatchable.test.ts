import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { firstValueFrom, filter } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ProviderStatus } from '../provider.ts';
import { FileProvider } from './index.ts';

describe('FileProvider whose folder cannot be watched', () => {
  let dir: string;
  let provider: FileProvider | undefined;
  // The one part that cannot run for real here: a kernel out of inotify watches (ENOSPC), which this
  // machine's other work must not be made to share. The unit project shares modules between files
  // (isolate: false), so the already-loaded `watch` binding is replaced for this file's tests
  // (syncBuiltinESMExports carries the spy to `import { watch } from 'node:fs'`) and put back after.
  beforeEach(() => {
    vi.spyOn(fs, 'watch').mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
    });
    syncBuiltinESMExports();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    syncBuiltinESMExports();
    await provider?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the file it read but stays stale, naming the watch, for edits go unseen', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-file-unwatched-'));
    const path = join(dir, 'instances.yaml');
    await writeFile(path, 'services:\n  user: [127.0.0.1:8081]\n');
    const started = new FileProvider({ path, debounceMs: 10 });
    provider = started;
    const statuses: ProviderStatus[] = [];
    started.status$.subscribe((status) => statuses.push(status));
    started.start();
    const user = await firstValueFrom(started.snapshots$.pipe(filter((snapshot) => snapshot.service === 'user')));
    expect(user.instances.map((instance) => instance.port)).toEqual([8081]);
    expect(statuses.at(-1)).toMatchObject({ state: 'stale' });
    expect(statuses.at(-1)?.reason).toMatch(/cannot watch the folder.*ENOSPC/);
    expect(statuses.some((status) => status.state === 'connected')).toBe(false);
  });
});
