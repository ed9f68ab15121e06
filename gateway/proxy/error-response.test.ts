import { describe, expect, it } from 'vitest';
import { LISTENER_ANSWER, type GatewayContext } from '../context.ts';
import { sendErrorAnswer, sendGatewayError, sendOwnAnswer } from './error-response.ts';

/** A request whose response can no longer be written (destroyed), with the answer its listener gave in its place, if any. */
function unsendable(listenerAnswer?: { status: number; error: string; bytes: number }): GatewayContext {
  const response = { headersSent: false, destroyed: true, ...(listenerAnswer ? { [LISTENER_ANSWER]: listenerAnswer } : {}) };
  return { response, request: { headers: {} }, outcome: { status: 0, errorClass: undefined, attempts: 1, bytesOut: 0 } } as unknown as GatewayContext;
}

describe('sendGatewayError on a response that can no longer be written', () => {
  it('records the class as the outcome when the client went away', () => {
    const context = unsendable();
    sendGatewayError(context, 'cancelled');
    expect(context.outcome).toMatchObject({ status: 499, errorClass: 'cancelled', bytesOut: 0 });
  });

  it.each(['no-instances', 'headers-timeout', 'body-too-large'] as const)('records 499 cancelled, not the %s answer it could not send, when the client went away first', (errorClass) => {
    const context = unsendable();
    sendGatewayError(context, errorClass);
    expect(context.outcome).toMatchObject({ status: 499, errorClass: 'cancelled', bytesOut: 0 });
  });

  it("records 499 cancelled, not a middleware's own refusal (forwardAuth's 502), when the client went away first", () => {
    const context = unsendable();
    sendErrorAnswer(context, 502, 'auth-unavailable', 'the auth service failed');
    expect(context.outcome).toMatchObject({ status: 499, errorClass: 'cancelled', bytesOut: 0 });
  });

  it("records the listener's own answer when it answered in the request's place (its body failed to parse)", () => {
    const context = unsendable({ status: 400, error: 'bad-request', bytes: 60 });
    sendGatewayError(context, 'cancelled');
    expect(context.outcome).toMatchObject({ status: 400, errorClass: 'bad-request', bytesOut: 60 });
  });
});

describe('sendOwnAnswer on a response that can no longer be written', () => {
  it("records the listener's own answer when it answered in the request's place, and writes nothing", () => {
    const context = unsendable({ status: 408, error: 'request-timeout', bytes: 70 });
    sendOwnAnswer(context, 503, {}, Buffer.from('down for maintenance'));
    expect(context.outcome).toMatchObject({ status: 408, errorClass: 'request-timeout', bytesOut: 70 });
  });

  it('records 499 cancelled, not the answer it could not send, when the client went away first', () => {
    const context = unsendable();
    sendOwnAnswer(context, 301, { location: '/elsewhere' });
    expect(context.outcome).toMatchObject({ status: 499, errorClass: 'cancelled', bytesOut: 0 });
  });

  it('records its own status on a response whose head went out before (the client got that one)', () => {
    const context = unsendable();
    (context.response as { headersSent: boolean; destroyed: boolean }).headersSent = true;
    (context.response as { headersSent: boolean; destroyed: boolean }).destroyed = false;
    sendOwnAnswer(context, 301, { location: '/elsewhere' });
    expect(context.outcome).toMatchObject({ status: 301, errorClass: undefined });
  });
});
