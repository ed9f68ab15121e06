import { readCredentialFiles } from '../../connection-credentials.ts';
import type { IKeyValue, IWatchResponse } from 'etcd3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { providerResyncsTotal } from '../../metrics.ts';
import type { ProviderSnapshot, ProviderStatus } from '../provider.ts';
import type { EtcdSessionHandlers, EtcdSessionOptions, SessionEnd } from './etcd-session.ts';
import { EtcdProvider, type EtcdSessionFactory } from './provider-etcd.ts';

/** A session the test drives by hand: it lists, streams and ends when told to. */
interface ScriptedSession {
  readonly options: EtcdSessionOptions;
  readonly handlers: EtcdSessionHandlers;
  end(end: Omit<SessionEnd, 'listedForMs'> & { listedForMs?: number }): void;
  list(revision: number, entries: Record<string, string>): void;
  watch(revision: number, events: { type: 'Put' | 'Delete'; key: string; value?: string }[]): void;
}

const kv = (key: string, value: string): IKeyValue =>
  ({ key: Buffer.from(key), value: Buffer.from(value), create_revision: '1', mod_revision: '1', version: '1', lease: '0' });
const instance = (port: number): string => JSON.stringify({ host: '10.0.0.1', port });

let providerCount = 0;
const providers: EtcdProvider[] = [];

afterEach(async () => {
  for (const provider of providers.splice(0)) await provider.close();
});

function scripted(endpoints = ['http://a:2379']): {
  provider: EtcdProvider;
  sessions: ScriptedSession[];
  snapshots: ProviderSnapshot[];
  statuses: ProviderStatus[];
  members: (service: string) => number[] | undefined;
} {
  const sessions: ScriptedSession[] = [];
  const factory: EtcdSessionFactory = (options, handlers) => {
    let resolve: (end: SessionEnd) => void = () => undefined;
    const ended = new Promise<SessionEnd>((settle) => (resolve = settle));
    sessions.push({
      options,
      handlers,
      end: (end) => resolve({ listedForMs: undefined, ...end }),
      list: (revision, entries) =>
        handlers.onListed({ revision: String(revision), kvs: Object.entries(entries).map(([key, value]) => kv(key, value)) }),
      watch: (revision, events) =>
        handlers.onWatchResponse({
          header: { revision: String(revision) },
          events: events.map(({ type, key, value }) => ({ type, kv: kv(key, value ?? '') })),
        } as unknown as IWatchResponse),
    });
    return { run: () => ended, close: () => resolve({ reason: 'closed', listedForMs: undefined }) };
  };
  providerCount += 1;
  const provider = new EtcdProvider(
    { endpoints, prefix: '/services', name: `scripted-${providerCount}`, batchWindowMs: 0, backoff: { initialMs: 1, maxMs: 20 } },
    factory,
  );
  providers.push(provider);
  const snapshots: ProviderSnapshot[] = [];
  const statuses: ProviderStatus[] = [];
  provider.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
  provider.status$.subscribe((status) => statuses.push(status));
  provider.start();
  const members = (service: string): number[] | undefined =>
    snapshots.filter((snapshot) => snapshot.service === service).at(-1)?.instances.map((entry) => entry.port);
  return { provider, sessions, snapshots, statuses, members };
}

async function resyncs(provider: EtcdProvider, reason: string): Promise<number> {
  const { values } = await providerResyncsTotal.get();
  return values.find((value) => value.labels.provider === provider.name && value.labels.reason === reason)?.value ?? 0;
}

describe('EtcdProvider supervision', () => {
  it('reports connected only after the first listing, which it publishes per service', () => {
    const { sessions, snapshots, statuses, members } = scripted();
    expect(statuses.map((status) => status.state)).toEqual(['connecting']);
    sessions[0]!.list(5, { '/services/a/1': instance(1), '/services/a/2': instance(2), '/services/b/1': instance(3) });
    expect(statuses.at(-1)?.state).toBe('connected');
    expect(snapshots.map((snapshot) => [snapshot.service, snapshot.revision])).toEqual([['a', '5'], ['b', '5']]);
    expect(members('a')).toEqual([1, 2]);
    expect(sessions[0]!.options.keyPrefix).toBe('/services/');
  });

  it('goes stale on a broken session, keeps the last sets, and counts one broken resync when a new session re-lists', async () => {
    const { provider, sessions, snapshots, statuses, members } = scripted();
    sessions[0]!.list(5, { '/services/a/1': instance(1) });
    sessions[0]!.end({ reason: 'broken', error: new Error('14 UNAVAILABLE') });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    expect(statuses.at(-1)?.state).toBe('stale');
    sessions[1]!.end({ reason: 'broken' });
    await vi.waitFor(() => expect(sessions).toHaveLength(3));
    expect(snapshots.every((snapshot) => snapshot.instances.length > 0)).toBe(true);
    expect(await resyncs(provider, 'broken')).toBe(0);

    sessions[2]!.list(9, { '/services/a/1': instance(1), '/services/a/2': instance(2) });
    expect(statuses.at(-1)?.state).toBe('connected');
    expect(members('a')).toEqual([1, 2]);
    expect(await resyncs(provider, 'broken')).toBe(1);
  });

  it('re-lists at once after a compaction without going stale and counts the resync as compacted', async () => {
    const { provider, sessions, statuses } = scripted();
    sessions[0]!.list(5, { '/services/a/1': instance(1) });
    sessions[0]!.end({ reason: 'compacted', listedForMs: 60_000 });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    sessions[1]!.list(12, { '/services/a/1': instance(1) });
    expect(statuses.map((status) => status.state)).toEqual(['connecting', 'connected']);
    expect(await resyncs(provider, 'compacted')).toBe(1);
  });

  it('waits and goes stale when compactions repeat without a listing in between', async () => {
    const { sessions, statuses } = scripted();
    sessions[0]!.list(5, { '/services/a/1': instance(1) });
    sessions[0]!.end({ reason: 'compacted', listedForMs: 60_000 });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    expect(statuses.at(-1)?.state).toBe('connected');
    sessions[1]!.end({ reason: 'compacted' });
    await vi.waitFor(() => expect(sessions).toHaveLength(3));
    expect(statuses.at(-1)?.state).toBe('stale');
  });

  it('publishes an empty snapshot for a service that a re-list no longer contains', async () => {
    const { sessions, members } = scripted();
    sessions[0]!.list(5, { '/services/a/1': instance(1), '/services/b/1': instance(2) });
    sessions[0]!.end({ reason: 'stalled' });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    sessions[1]!.list(8, { '/services/b/1': instance(2) });
    expect(members('a')).toEqual([]);
    expect(members('b')).toEqual([2]);
  });

  it('stays connecting rather than stale while no listing has succeeded yet, giving the failure as its reason', async () => {
    const { provider, sessions, statuses } = scripted();
    sessions[0]!.end({ reason: 'broken', error: new Error('unable to verify the first certificate') });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    sessions[1]!.list(3, {});
    expect(statuses.map((status) => [status.state, status.reason])).toEqual([
      ['connecting', undefined],
      ['connecting', 'broken: unable to verify the first certificate'],
      ['connected', undefined],
    ]);
    expect(await resyncs(provider, 'broken')).toBe(0);
  });

  it('replaceCredentials ends the session and opens the next one with the new credentials at once, staying connected with the sets it had', async () => {
    const { provider, sessions, statuses, members } = scripted();
    sessions[0]!.list(3, { '/services/a/1': instance(1) });
    const credentials = readCredentialFiles({}, '/').credentials;
    provider.replaceCredentials(credentials);
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    expect(sessions[0]!.options.credentials).toBeUndefined();
    expect(sessions[1]!.options.credentials).toBe(credentials);
    expect(members('a')).toEqual([1]);
    expect(statuses.map((status) => status.state)).toEqual(['connecting', 'connected']);
  });

  it('moves to the next endpoint after a failed session', async () => {
    const { sessions } = scripted(['http://a:2379', 'http://b:2379', 'http://c:2379']);
    for (let i = 0; i < 3; i += 1) {
      sessions[i]!.end({ reason: 'broken' });
      await vi.waitFor(() => expect(sessions).toHaveLength(i + 2));
    }
    const used = sessions.map((session) => session.options.endpoint);
    expect(new Set(used.slice(0, 3)).size).toBe(3);
    expect(used[3]).toBe(used[0]);
  });

  it('applies watch events and publishes only the services they touch', () => {
    const { sessions, snapshots, members } = scripted();
    sessions[0]!.list(5, { '/services/a/1': instance(1), '/services/b/1': instance(2) });
    const before = snapshots.length;
    sessions[0]!.watch(6, [
      { type: 'Put', key: '/services/a/2', value: instance(3) },
      { type: 'Delete', key: '/services/a/1' },
      { type: 'Put', key: '/services/a', value: instance(9) },
    ]);
    expect(snapshots.slice(before).map((snapshot) => [snapshot.service, snapshot.revision])).toEqual([['a', '6']]);
    expect(members('a')).toEqual([3]);
  });

  it('completes both streams on close, even while waiting to retry', async () => {
    const { provider, sessions } = scripted();
    sessions[0]!.end({ reason: 'broken' });
    await vi.waitFor(() => expect(sessions).toHaveLength(2));
    let completed = 0;
    provider.snapshots$.subscribe({ complete: () => (completed += 1) });
    provider.status$.subscribe({ complete: () => (completed += 1) });
    await provider.close();
    expect(completed).toBe(2);
    expect(sessions.length).toBeLessThanOrEqual(2);
  });
});
