import type { OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { stickyId } from '../../src/balance/sticky.ts';
import { DEFAULT_STICKY_COOKIE, type StickyCookie } from '../config/index.ts';
import type { GatewayContext, RequestOutcome } from '../context.ts';
import { setCookieValue, stickyPickContext } from './sticky-cookie.ts';

/** The default cookie, named as the tests' requests name it. */
const COOKIE: StickyCookie = { ...DEFAULT_STICKY_COOKIE, name: 'sb_sticky' };

const A = '10.0.0.1:8080';
const B = '10.0.0.2:8080';

/** The parts of a request's context the sticky cookie reads, with its Cookie header and where it was answered from. */
function contextOf(cookie: string | undefined): GatewayContext {
  const outcome: RequestOutcome = { status: 200, attempts: 1, bytesOut: 0 };
  return { request: { headers: cookie === undefined ? {} : { cookie } }, service: 'svc', clientIp: '127.0.0.1', upstream: { path: '/x' }, responseHeaderHooks: [], outcome } as unknown as GatewayContext;
}

/** Runs the request's hooks over an answer with `headers`, as the transports do. */
function answer(context: GatewayContext, headers: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  for (const hook of context.responseHeaderHooks) hook(context.outcome.status, headers, context);
  return headers;
}

describe('setCookieValue', () => {
  it.each<[Partial<StickyCookie>, string]>([
    [{}, 'sb_sticky=0123456789abcdef; Path=/; HttpOnly'],
    [{ name: 'route', path: '/app', maxAgeSeconds: 3_600, secure: true, httpOnly: false, sameSite: 'none' }, 'route=0123456789abcdef; Path=/app; Max-Age=3600; Secure; SameSite=None'],
    [{ sameSite: 'strict' }, 'sb_sticky=0123456789abcdef; Path=/; HttpOnly; SameSite=Strict'],
  ])('writes %j as %s', (cookie, expected) => {
    expect(setCookieValue({ ...COOKIE, ...cookie }, '0123456789abcdef')).toBe(expected);
  });
});

describe('stickyPickContext', () => {
  it("carries the id the request's cookie names, among other cookies", () => {
    const context = contextOf(`a=1; sb_sticky=${stickyId('svc', A)}; b=2`);
    expect(stickyPickContext(context, COOKIE)).toEqual({ clientIp: '127.0.0.1', url: '/x', headers: context.request.headers, sticky: stickyId('svc', A) });
    expect(stickyPickContext(contextOf('a=1'), COOKIE).sticky).toBeUndefined();
    expect(stickyPickContext(contextOf('sb_sticky='), COOKIE).sticky).toBeUndefined();
  });

  it('sets no cookie when the instance that answered is the one named', () => {
    const context = contextOf(`sb_sticky=${stickyId('svc', A)}`);
    stickyPickContext(context, COOKIE);
    context.outcome.upstream = A;
    expect(answer(context)['set-cookie']).toBeUndefined();
  });

  it("sets the cookie to the instance that answered, after the upstream's own cookies", () => {
    const context = contextOf(`sb_sticky=${stickyId('svc', A)}`);
    stickyPickContext(context, COOKIE);
    context.outcome.upstream = B;
    expect(answer(context, { 'set-cookie': ['app=1'] })['set-cookie']).toEqual(['app=1', `sb_sticky=${stickyId('svc', B)}; Path=/; HttpOnly`]);
  });

  it("sets none on the gateway's own answer, even after an attempt", () => {
    const context = contextOf(undefined);
    stickyPickContext(context, COOKIE);
    context.outcome.upstream = B;
    context.outcome.errorClass = 'upstream-refused';
    expect(answer(context)['set-cookie']).toBeUndefined();
  });
});
