import { describe, expect, it } from 'vitest';
import { createZooKeeperProvider, normalizeRoot } from './provider-zookeeper.ts';

describe('createZooKeeperProvider', () => {
  it.each([
    ['/services', '/services'],
    ['/services/', '/services'],
    ['services', '/services'],
    ['//a//b/', '/a/b'],
    ['/', '/'],
    ['', '/'],
  ])('normalises the root %j to %j', (root, expected) => {
    expect(normalizeRoot(root)).toBe(expected);
  });

  it('names itself after the connect string and root unless told otherwise', async () => {
    const unnamed = createZooKeeperProvider({ connectString: '127.0.0.1:2181', root: '/apps/' });
    const named = createZooKeeperProvider({ connectString: '127.0.0.1:2181', name: 'zk-main' });
    expect(unnamed.name).toBe('zk:127.0.0.1:2181/apps');
    expect(named.name).toBe('zk-main');
    await Promise.all([unnamed.close(), named.close()]);
  });

  it('reports connecting before start and completes both streams on close', async () => {
    const provider = createZooKeeperProvider({ connectString: '127.0.0.1:2181' });
    const states: string[] = [];
    let completed = 0;
    provider.status$.subscribe({ next: (status) => states.push(status.state), complete: () => (completed += 1) });
    provider.snapshots$.subscribe({ complete: () => (completed += 1) });
    await provider.close();
    expect(states).toEqual(['connecting', 'closed']);
    expect(completed).toBe(2);
  });
});
