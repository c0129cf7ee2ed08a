/** A guest that fails one chosen write call: proves a transaction rolls back whichever write fails. */
import type { Guest, GuestReader } from '../../src/core/backend.js';
import type { FileChange } from '../../src/core/file-change.js';

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


/** Every entry under `dir` of a guest, read through its GuestReader: type, mode, owner, content, link target. */
export async function snapshotGuest(g: GuestReader, dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (p: string): Promise<void> => {
    const st = await g.lstat(p);
    if (!st) return;
    const head = `${st.type} ${st.mode.toString(8)} ${st.uid}:${st.gid}`;
    if (st.type === 'symlink') out.set(p, `${head} -> ${await g.readlink(p)}`);
    else if (st.type === 'file') out.set(p, `${head} ${(await g.readFile(p))!.toString('base64')}`);
    else if (st.type === 'dir') {
      out.set(p, head);
      for (const name of (await g.readdir(p)) ?? []) await visit(`${p === '/' ? '' : p}/${name}`);
    } else out.set(p, head);
  };
  await visit(dir);
  return out;
}

/** The transaction fixture under `prefix`, made through the guest's own writes (any backend). */
export async function buildGuestTree(g: Guest, prefix: string): Promise<void> {
  const root = { mode: 0o644, uid: 0, gid: 0 };
  await g.remove(prefix, { recursive: true });
  await g.mkdir(`${prefix}/root`, { mode: 0o700, uid: 0, gid: 0 });
  await g.mkdir(`${prefix}/etc/existing-dir`, { mode: 0o755, uid: 0, gid: 0 });
  await g.writeFile(`${prefix}/etc/hostname`, Buffer.from('old-name\n'), root);
  await g.symlink(`${prefix}/etc/hostname`, `${prefix}/etc/link`);
  await g.writeFile(`${prefix}/etc/old.conf`, Buffer.from('old\n'), root);
  await g.symlink('../nowhere', `${prefix}/etc/old-link`);
  await g.symlink('old.conf', `${prefix}/etc/alias`);
  await g.writeFile(`${prefix}/etc/passwd`, Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), root);
  await g.writeFile(`${prefix}/var/lib/tree/a`, Buffer.from('a\n'), root);
  await g.writeFile(`${prefix}/var/lib/tree/b/c`, Buffer.from('c\n'), { mode: 0o600, uid: 3, gid: 4 });
  await g.symlink('a', `${prefix}/var/lib/tree/l`);
}

/** One change of every kind over every kind of prior state of buildGuestTree's tree. */
export function planUnder(prefix: string): FileChange[] {
  const w = (p: string, content: string, mode = 0o644, uid = 0, gid = 0): FileChange => ({ op: 'write', source: 'test', path: prefix + p, content: Buffer.from(content), mode, uid, gid });
  return [
    w('/etc/hostname', 'new-name\n', 0o600, 5, 6),
    w('/etc/link', 'was a link\n'),
    w('/opt/new/deep/file', 'created with its parents\n'),
    { op: 'mkdir', source: 'test', path: `${prefix}/root/.ssh`, mode: 0o700, uid: 1000, gid: 1000 },
    { op: 'mkdir', source: 'test', path: `${prefix}/etc/existing-dir`, mode: 0o750, uid: 7, gid: 7 },
    { op: 'delete', source: 'test', path: `${prefix}/var/lib/tree`, recursive: true },
    { op: 'delete', source: 'test', path: `${prefix}/etc/old.conf` },
    { op: 'delete', source: 'test', path: `${prefix}/etc/old-link` },
    { op: 'symlink', source: 'test', path: `${prefix}/etc/localtime`, target: '/usr/share/zoneinfo/UTC' },
    { op: 'symlink', source: 'test', path: `${prefix}/etc/alias`, target: 'hostname' },
    w('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nops:x:1000:1000::/home/ops:/bin/sh\n', 0o644),
  ];
}

/**
 * A guest as a process killed at its `dieAt`-th write call (1-based) leaves it: that
 * call and every later write fail without doing anything (a rollback cannot run either).
 */
export function dyingGuest<G extends Guest>(inner: G, dieAt: number): G {
  let calls = 0;
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!(WRITERS as readonly (string | symbol)[]).includes(prop)) return (value as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        if (++calls >= dieAt) throw new Error(`killed before ${String(prop)} ${String(args[0])}`);
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  }) as G;
}
