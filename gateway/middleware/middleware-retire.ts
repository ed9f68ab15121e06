import type { Middleware } from '../context.ts';

const retireHooks = new WeakMap<Middleware, () => void>();

/**
 * Registers what `middleware` stops when it is retired: a reload replaced or dropped it
 * (`NamedMiddlewareRegistry.update`). Requests admitted before may still run it; the hook ends
 * only its background work (a rate limit's Redis probe), never what a request needs.
 */
export function whenRetired(middleware: Middleware, hook: () => void): void {
  retireHooks.set(middleware, hook);
}

/** Runs `middleware`'s retire hook, if it has one, once. */
export function retire(middleware: Middleware): void {
  const hook = retireHooks.get(middleware);
  retireHooks.delete(middleware);
  hook?.();
}
