/** A guest that fails one chosen write call: proves a transaction rolls back whichever write fails. */
import type { Guest } from '../../src/backends/backend.js';

const WRITERS = ['writeFile', 'mkdir', 'remove', 'symlink', 'chmod', 'chown', 'rename'] as const;

/** A guest whose `failAt`-th write call (1-based) fails once, before doing anything; counts every write call. */
export function faultyGuest<G extends Guest>(inner: G, failAt: number): G & { calls: number } {
  const state = { calls: 0 };
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'calls') return state.calls;
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!(WRITERS as readonly (string | symbol)[]).includes(prop)) return (value as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        if (++state.calls === failAt) throw new Error(`injected failure of ${String(prop)} ${String(args[0])}`);
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  }) as G & { calls: number };
}

