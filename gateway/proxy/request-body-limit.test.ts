import { Readable, Transform } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { rootLogger } from '../../src/logger.ts';
import type { ClientRequest, ClientResponse, GatewayContext } from '../context.ts';
import { createContext } from '../request-handler.ts';
import { BodyTooLargeError } from '../transports/transport-outcome.ts';
import { limitedBody, type RequestBodyTap } from './request-body-limit.ts';

/** A request's context with `body` as its stream, in those chunks. */
function contextFor(body: readonly string[]): GatewayContext {
  const request = Object.assign(Readable.from(body.map((text) => Buffer.from(text))), { method: 'POST', url: '/', headers: { host: 'h' }, socket: { remoteAddress: '127.0.0.1' } });
  return createContext(request as unknown as ClientRequest, {} as ClientResponse, rootLogger);
}

/** A tap that keeps what it sees. */
function recordingTap(): { tap: RequestBodyTap; seen: string[]; ended: () => boolean } {
  const seen: string[] = [];
  let ended = false;
  return { tap: { data: (chunk) => void seen.push(String(chunk)), end: () => void (ended = true) }, seen, ended: () => ended };
}

/** Reads `body` to its end: the text, or the error it failed with. */
async function read(body: Readable): Promise<{ text: string; error?: Error }> {
  let text = '';
  try {
    for await (const chunk of body) text += String(chunk);
  } catch (error) {
    return { text, error: error as Error };
  }
  return { text };
}

describe('limitedBody', () => {
  it('is the request itself when nothing limits, decodes or taps it', () => {
    const context = contextFor(['a']);
    expect(limitedBody(context)).toBe(context.request);
  });

  it('counts and taps in one step when nothing decodes between: under the limit the tap sees every chunk and the end', async () => {
    const context = contextFor(['abc', 'def']);
    const { tap, seen, ended } = recordingTap();
    context.set('requestBodyLimit', 6);
    context.set('requestBodyTap', tap);
    expect(await read(limitedBody(context))).toEqual({ text: 'abcdef' });
    expect(seen).toEqual(['abc', 'def']);
    expect(ended()).toBe(true);
  });

  it('fails at the chunk past the limit, which the tap never sees, and the tap never sees an end', async () => {
    const context = contextFor(['abc', 'def', 'g']);
    const { tap, seen, ended } = recordingTap();
    context.set('requestBodyLimit', 5);
    context.set('requestBodyTap', tap);
    const { text, error } = await read(limitedBody(context));
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect(['', 'abc']).toContain(text); // what was read before the failure destroyed the stream's buffer
    expect(seen).toEqual(['abc']);
    expect(ended()).toBe(false);
  });

  it('counts the body as sent and taps it as decoded when a decoder sits between', async () => {
    const context = contextFor(['ab', 'cd']);
    const { tap, seen, ended } = recordingTap();
    context.set('requestBodyLimit', 4);
    context.set('requestBodyTap', tap);
    const upper = () => new Transform({ transform: (chunk: Buffer, _encoding, callback) => callback(null, Buffer.from(String(chunk).toUpperCase() + '!')) });
    context.set('requestBodyDecoder', upper);
    expect(await read(limitedBody(context))).toEqual({ text: 'AB!CD!' });
    expect(seen).toEqual(['AB!', 'CD!']);
    expect(ended()).toBe(true);
  });
});
