import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Picker } from '../../src/balance/picker.ts';
import { rootLogger } from '../../src/logger.ts';
import type { MirrorRouting } from '../config/index.ts';
import type { ClientRequest, ClientResponse, GatewayContext } from '../context.ts';
import { createContext } from '../request-handler.ts';
import { MirrorBodyCopy } from './mirror-body.ts';
import { MirrorSender, type MirrorCopy } from './mirror-send.ts';
import { shadowHost } from './mirror-send.ts';
import { RouteMirror } from './mirror.ts';
import { limitedBody } from './request-body-limit.ts';

const SETTINGS: MirrorRouting = { service: 'shadow', percent: 100, body: true, maxBodyBytes: 16, timeoutMs: 1_000, maxInFlight: 10 };

/** A sender that keeps what it is given. */
function recordingSender(): { sender: MirrorSender; copies: MirrorCopy[] } {
  const copies: MirrorCopy[] = [];
  // The real sender's turns (no connection is opened for them): they are what a rebuilt route keeps.
  const real = new MirrorSender({ pickerFor: () => undefined });
  const turnsOf = real.turnsOf.bind(real);
  return { sender: { send: (copy: MirrorCopy) => void copies.push(copy), full: () => false, turnsOf } as unknown as MirrorSender, copies };
}

/** A request's context as the pipeline builds it, with `body` as the request's own stream. */
function contextFor(headers: Record<string, string>, body: readonly string[] = [], method = 'POST'): GatewayContext {
  const request = Object.assign(Readable.from(body.map((text) => Buffer.from(text))), { method, url: '/orders?id=1', headers: { host: 'api.example.com', ...headers }, socket: { remoteAddress: '127.0.0.1' } });
  return createContext(request as unknown as ClientRequest, {} as ClientResponse, rootLogger);
}

/** Reads `context`'s body as the proxy would, to its end. */
async function readAsProxy(context: GatewayContext): Promise<string> {
  let text = '';
  for await (const chunk of limitedBody(context)) text += String(chunk);
  return text;
}

describe('RouteMirror', () => {
  it.each([
    [0, 0],
    [100, 1_000],
    [25, 250],
    [33, 330],
    [12.5, 125],
  ])('copies %d%% of the route\'s requests: %d of 1,000', (percent, expected) => {
    const { sender, copies } = recordingSender();
    const mirror = new RouteMirror('r', { ...SETTINGS, percent }, sender);
    for (let index = 0; index < 1_000; index += 1) mirror.start(contextFor({}, [], 'GET'));
    expect(copies).toHaveLength(expected);
  });

  it('spreads the copies evenly: 25% copies the 1st, 5th, 9th request', () => {
    const { sender, copies } = recordingSender();
    const mirror = new RouteMirror('r', { ...SETTINGS, percent: 25 }, sender);
    for (let index = 0; index < 12; index += 1) mirror.start(contextFor({ 'x-n': String(index + 1) }, [], 'GET'));
    expect(copies.map((copy) => copy.headers['x-n'])).toEqual(['1', '5', '9']);
  });

  it('keeps its turns across a rebuild of the route (a reload) with the same percent, and starts afresh for a new percent', () => {
    const { sender, copies } = recordingSender();
    // Each request under a configuration of its own, as when the store is written between requests.
    for (let index = 0; index < 8; index += 1) new RouteMirror('r', { ...SETTINGS, percent: 25 }, sender).start(contextFor({ 'x-n': String(index + 1) }, [], 'GET'));
    expect(copies.map((copy) => copy.headers['x-n'])).toEqual(['1', '5']);
    new RouteMirror('r', { ...SETTINGS, percent: 50 }, sender).start(contextFor({ 'x-n': '9' }, [], 'GET'));
    expect(copies.map((copy) => copy.headers['x-n'])).toEqual(['1', '5', '9']);
  });

  it('copies a request without a body at once, with its method, path after rewrites, headers and Host', () => {
    const { sender, copies } = recordingSender();
    const context = contextFor({ 'x-tenant': 'a' }, [], 'DELETE');
    context.upstream.path = '/v2/orders?id=1';
    new RouteMirror('r', SETTINGS, sender).start(context);
    expect(copies).toEqual([{ route: 'r', settings: SETTINGS, method: 'DELETE', path: '/v2/orders?id=1', headers: { 'x-tenant': 'a' }, host: 'api.example.com', body: undefined }]);
  });

  it('copies a body as the proxy reads it, once it has ended, and the proxy still reads all of it', async () => {
    const { sender, copies } = recordingSender();
    const context = contextFor({ 'transfer-encoding': 'chunked' }, ['hello ', 'world']);
    new RouteMirror('r', SETTINGS, sender).start(context);
    expect(copies).toHaveLength(0);
    expect(await readAsProxy(context)).toBe('hello world');
    expect(copies.map((copy) => copy.body?.toString())).toEqual(['hello world']);
  });

  it('does not copy a body announced past maxBodySize, and leaves the proxy\'s body as it was', () => {
    const { sender, copies } = recordingSender();
    const context = contextFor({ 'content-length': '17' }, ['x'.repeat(17)]);
    new RouteMirror('r', SETTINGS, sender).start(context);
    expect(copies).toHaveLength(0);
    expect(context.get('requestBodyTap')).toBeUndefined();
    expect(limitedBody(context)).toBe(context.request);
  });

  it('does not copy a chunked body that grows past maxBodySize, which still reaches the proxy whole', async () => {
    const { sender, copies } = recordingSender();
    const context = contextFor({ 'transfer-encoding': 'chunked' }, ['x'.repeat(10), 'y'.repeat(10)]);
    new RouteMirror('r', SETTINGS, sender).start(context);
    expect(await readAsProxy(context)).toBe('x'.repeat(10) + 'y'.repeat(10));
    expect(copies).toHaveLength(0);
  });

  it('copies a request with a body at once and without it when body is false', () => {
    const { sender, copies } = recordingSender();
    const context = contextFor({ 'content-length': '5' }, ['hello']);
    new RouteMirror('r', { ...SETTINGS, body: false }, sender).start(context);
    expect(copies.map((copy) => [copy.body, copy.headers['content-length']])).toEqual([[undefined, undefined]]);
    expect(context.get('requestBodyTap')).toBeUndefined();
  });
});

describe('MirrorBodyCopy', () => {
  it('gives nothing for a body cut short', () => {
    const seen: string[] = [];
    const copy = new MirrorBodyCopy(16, (body) => seen.push(`whole ${body.length}`), () => seen.push('too large'));
    copy.data(Buffer.from('abc'));
    expect(seen).toEqual([]);
  });

  it('says too large once, and nothing at the end', () => {
    const seen: string[] = [];
    const copy = new MirrorBodyCopy(4, (body) => seen.push(`whole ${body.length}`), () => seen.push('too large'));
    copy.data(Buffer.from('abc'));
    copy.data(Buffer.from('de'));
    copy.data(Buffer.from('f'));
    copy.end();
    expect(seen).toEqual(['too large']);
  });
});

describe('shadowHost', () => {
  it.each([
    ['api.example.com', 'api.example.com-shadow'],
    ['api.example.com:8080', 'api.example.com-shadow:8080'],
    ['127.0.0.1:9000', '127.0.0.1-shadow:9000'],
    ['[::1]:9000', '[::1]:9000'],
  ])('marks %s as %s', (host, expected) => {
    expect(shadowHost(host)).toBe(expected);
  });
});

describe('MirrorSender', () => {
  it('closes once however often it is asked, as a gateway that drains and then stops asks twice', async () => {
    const sender = new MirrorSender({ pickerFor: () => undefined });
    await expect(Promise.all([sender.close(100), sender.close(100)])).resolves.toEqual([undefined, undefined]);
    await expect(sender.close(100)).resolves.toBeUndefined();
  });
});

describe('RouteMirror with its route\'s copies all out', () => {
  it('keeps no copy of a body while the route has maxInFlight copies out at a mirror that never answers', async () => {
    const arrived: string[] = [];
    // A real mirror on port 0 that takes requests and never answers them.
    const server = createServer((request) => void arrived.push(request.url ?? ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const picker = { pick: () => ({ kind: 'endpoint', instance: { protocol: 'http' }, address, done: () => undefined }) } as unknown as Picker;
    const sender = new MirrorSender({ pickerFor: () => picker });
    try {
      const settings = { ...SETTINGS, maxInFlight: 1, timeoutMs: 60_000 };
      const mirror = new RouteMirror('r', settings, sender);
      mirror.start(contextFor({}, [], 'GET'));
      const deadline = Date.now() + 10_000;
      while (arrived.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(arrived).toEqual(['/orders?id=1']);
      const context = contextFor({ 'content-length': '5' }, ['hello']);
      mirror.start(context);
      expect(context.get('requestBodyTap')).toBeUndefined();
      expect(await readAsProxy(context)).toBe('hello');
    } finally {
      await sender.close(100);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
