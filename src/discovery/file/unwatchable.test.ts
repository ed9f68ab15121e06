import type * as fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, filter } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ProviderStatus } from '../provider.ts';
import { FileProvider } from './index.ts';

// The one part that cannot run for real here: a kernel out of inotify watches (ENOSPC), which this
// machine's other work must not be made to share.
vi.mock('node:fs', async (original) => ({
  ...(await original<typeof fs>()),
  watch: () => {
    throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
  },
}));

describe('FileProvider whose folder cannot be watched', () => {
  let dir: string;
  let provider: FileProvider | undefined;
  afterEach(async () => {
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
