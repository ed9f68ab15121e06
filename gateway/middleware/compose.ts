import type { GatewayContext, Middleware } from '../context.ts';

/**
 * Composes middleware into one, Koa/Hono style: each runs around the ones after it, and the last
 * calls `inner`. A middleware that calls `next()` twice gets a rejected promise instead of running
 * the inner layers again.
 */
export function compose(middleware: readonly Middleware[], inner: (context: GatewayContext) => Promise<void>): (context: GatewayContext) => Promise<void> {
  const layers = [...middleware];
  // Most routes have no middleware of their own: their chain is the inner function itself.
  if (layers.length === 0) return inner;
  return (context) => {
    let last = -1;
    const dispatch = (index: number): Promise<void> => {
      if (index <= last) return Promise.reject(new Error('next() called multiple times'));
      last = index;
      const layer = layers[index];
      if (!layer) return inner(context);
      try {
        return layer(context, () => dispatch(index + 1));
      } catch (error) {
        return Promise.reject(error);
      }
    };
    return dispatch(0);
  };
}
