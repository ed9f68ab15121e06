import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config/index.ts';
import { parseStoreUrl } from './config-store/store-layout.ts';
import { configStoreState } from './config-store/store-status.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';

const FILE = `
admin: 127.0.0.1:0
services:
  api: { instances: ["127.0.0.1:9001"] }
routes:
  - { path: /, service: api }
`;
const SERVING = () => ({ ready: true, reason: null });
const STORE_URL = 'etcd://127.0.0.1:2379/switchboard';

async function readiness(control: ControlPlane): Promise<{ status: number; body: { ready: boolean; reason: string | null } }> {
  const answer = await fetch(`http://127.0.0.1:${control.adminPort}/ready`);
  return { status: answer.status, body: (await answer.json()) as { ready: boolean; reason: string | null } };
}

// One file: `configStoreState` is this process's, and a store location, once set, stays; unit files
// share their worker's modules (isolate: false), so each test starts from none, whatever ran before.
describe('/ready of a gateway that reads a config store', () => {
  let control: ControlPlane | undefined;
  beforeEach(() => configStoreState.setLocation(undefined));
  afterEach(async () => {
    await control?.close();
    control = undefined;
  });

  it('is what serving says while no config store is read', async () => {
    control = await startControlPlane(parseConfig('/etc/sb/gateway.yaml', FILE), { admin: { ready: SERVING } });
    expect(await readiness(control)).toEqual({ status: 200, body: { ready: true, reason: null } });
  });

  it('stays what serving says when a reload adds a config store that has not answered (it started without one)', async () => {
    control = await startControlPlane(parseConfig('/etc/sb/gateway.yaml', FILE), { admin: { ready: SERVING } });
    // What the store reader does on that reload: the location is set, then the file alone is applied until the store answers.
    configStoreState.setLocation({ ...parseStoreUrl(STORE_URL), snapshotPath: undefined, timeoutMs: 5_000 });
    control.apply(parseConfig('/etc/sb/gateway.yaml', FILE.replace('path: /', 'path: /reloaded')));
    expect(await readiness(control)).toEqual({ status: 200, body: { ready: true, reason: null } });
  });

  it('says 503 and why while the file alone or the snapshot serves, 200 once a configuration read from the store applies, and stays so through a store outage', async () => {
    configStoreState.setLocation({ ...parseStoreUrl(STORE_URL), snapshotPath: undefined, timeoutMs: 5_000 });
    control = await startControlPlane(parseConfig('/etc/sb/gateway.yaml', FILE), { admin: { ready: SERVING } });
    expect(await readiness(control)).toEqual({ status: 503, body: { ready: false, reason: 'no configuration read from the config store (etcd) is in force yet: the gateway serves the configuration file alone' } });

    const status = { url: STORE_URL, revision: '41', source: 'snapshot' as const, applied: new Date().toISOString(), refused: [], ignored: [] };
    configStoreState.update(status);
    control.apply(parseConfig('/etc/sb/gateway.yaml', FILE.replace('path: /', 'path: /snapshot')));
    expect((await readiness(control)).body.reason).toBe("no configuration read from the config store (etcd) is in force yet: the gateway serves the file with the store's last-known-good snapshot (revision 41)");

    const shared = parseConfig('/etc/sb/gateway.yaml', FILE.replace('path: /', 'path: /shared'));
    configStoreState.update({ ...status, revision: '42', source: 'store' });
    configStoreState.markShared(shared);
    control.apply(shared);
    expect(await readiness(control)).toEqual({ status: 200, body: { ready: true, reason: null } });

    // Cut off since: every gateway serves the same last listing, and stays in its load balancer.
    configStoreState.setUnreadReason('broken: 14 UNAVAILABLE: No connection established');
    control.apply(parseConfig('/etc/sb/gateway.yaml', FILE.replace('path: /', 'path: /edited')));
    expect((await readiness(control)).status).toBe(200);
  });

  it('lets the reason of a gateway that does not serve come first', async () => {
    control = await startControlPlane(parseConfig('/etc/sb/gateway.yaml', FILE), { admin: { ready: () => ({ ready: false, reason: 'draining: the gateway is stopping' }) } });
    expect((await readiness(control)).body).toEqual({ ready: false, reason: 'draining: the gateway is stopping' });
  });
});
