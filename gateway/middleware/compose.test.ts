import { describe, expect, it } from 'vitest';
import type { GatewayContext, Middleware } from '../context.ts';
import { compose } from './compose.ts';

const context = {} as GatewayContext;

describe('compose', () => {
  it('runs layers as an onion around the inner handler', async () => {
    const trace: string[] = [];
    const layer = (name: string): Middleware => async (_context, next) => {
      trace.push(`${name} in`);
      await next();
      trace.push(`${name} out`);
    };
    await compose([layer('a'), layer('b')], async () => void trace.push('inner'))(context);
    expect(trace).toEqual(['a in', 'b in', 'inner', 'b out', 'a out']);
  });

  it('lets a layer answer without calling the inner handler', async () => {
    let reached = false;
    await compose([async () => undefined], async () => void (reached = true))(context);
    expect(reached).toBe(false);
  });

  it('rejects a second call of next() and runs the inner handler once', async () => {
    let inner = 0;
    const twice: Middleware = async (_context, next) => {
      await next();
      await next();
    };
    await expect(compose([twice], async () => void (inner += 1))(context)).rejects.toThrow('next() called multiple times');
    expect(inner).toBe(1);
  });

  it('turns a synchronous throw into a rejection the outer layer can catch', async () => {
    let caught: unknown;
    const outer: Middleware = async (_context, next) => {
      try {
        await next();
      } catch (error) {
        caught = error;
      }
    };
    const broken = (() => {
      throw new Error('boom');
    }) as unknown as Middleware;
    await compose([outer, broken], async () => undefined)(context);
    expect(caught).toEqual(new Error('boom'));
  });
});
