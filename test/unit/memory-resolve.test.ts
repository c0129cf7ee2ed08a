/**
 * MemoryGuest.resolve walks without per-component arrays (a render-only plan of
 * 10,000 machines asks it ~900,000 times); it must answer exactly what the plain
 * version below answers: `..` of the path itself lexical, link targets walked
 * component by component, the loop limit.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import path from 'node:path/posix';
import { MemoryGuest, type MemorySpec } from '../../src/backends/memory.js';

function reference(g: MemoryGuest, p: string, follow: boolean): string {
  let pending = path.resolve('/', p).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (pending.length) {
    const name = pending.shift()!;
    if (name === '.') continue;
    if (name === '..') { done.pop(); continue; }
    const e = g.entries.get('/' + [...done, name].join('/'));
    if (e?.type === 'symlink' && (pending.length > 0 || follow)) {
      if (++hops > 40) throw new Error('loop');
      if (e.target.startsWith('/')) done.length = 0;
      pending = [...e.target.split('/').filter(Boolean), ...pending];
      continue;
    }
    done.push(name);
  }
  return '/' + done.join('/');
}

const outcome = (fn: () => string): string => { try { return fn(); } catch { return 'loop'; } };

describe('MemoryGuest.resolve', () => {
  it('answers like the plain component walk, for generated trees with links and paths with . and ..', () => {
    const part = fc.constantFrom('a', 'b', 'etc', '..', '.', '', 'x');
    const target = fc.tuple(fc.boolean(), fc.array(part, { minLength: 1, maxLength: 4 })).map(([abs, ps]) => (abs ? '/' : '') + ps.join('/'));
    const entry = fc.tuple(fc.array(fc.constantFrom('a', 'b', 'etc', 'x'), { minLength: 1, maxLength: 3 }), fc.oneof(target.map((t): MemorySpec => ({ symlink: t })), fc.constant<MemorySpec>('file'), fc.constant<MemorySpec>({ dir: true })));
    const query = fc.tuple(fc.boolean(), fc.array(part, { minLength: 0, maxLength: 5 }), fc.boolean()).map(([abs, ps, slash]) => (abs ? '/' : '') + ps.join('/') + (slash ? '/' : ''));
    fc.assert(fc.property(fc.array(entry, { maxLength: 6 }), fc.array(query, { minLength: 1, maxLength: 6 }), fc.boolean(), (entries, queries, follow) => {
      const g = new MemoryGuest();
      for (const [parts, spec] of entries) {
        const p = '/' + parts.join('/');
        if (!g.entries.has(p)) g.put(p, spec);
      }
      for (const q of queries) expect(outcome(() => g.resolve(q, follow)), `${q} (follow ${follow})`).to.equal(outcome(() => reference(g, q, follow)));
    }), { numRuns: 3000 });
  });

  it('keeps the cases that matter: b -> b/../a is a loop, .. in the path is lexical', () => {
    const g = new MemoryGuest({ '/a': 'x', '/b': { symlink: 'b/../a' }, '/l': { symlink: '/etc/sub' }, '/etc/sub/f': 'y' });
    expect(() => g.resolve('/b', true)).to.throw(/too many levels/);
    expect(g.resolve('/l/../f', true)).to.equal('/f');
    expect(g.resolve('/l/f', true)).to.equal('/etc/sub/f');
    expect(g.resolve('l', false)).to.equal('/l');
    expect(g.resolve('', true)).to.equal('/');
    expect(g.resolve('/', true)).to.equal('/');
  });
});

describe('MemoryGuest writes like the real backends', () => {
  const attrs = { mode: 0o644, uid: 0, gid: 0 };
  it('replaces a final symlink instead of writing through it', async () => {
    const g = new MemoryGuest({ '/etc/shadow': 'root:*:1::::::\n', '/etc/hostname': { symlink: '/etc/shadow' }, '/etc/rel': { symlink: 'shadow' } });
    await g.writeFile('/etc/hostname', Buffer.from('n1\n'), attrs);
    await g.writeFile('/etc/rel', Buffer.from('x\n'), attrs);
    expect((await g.readFile('/etc/shadow'))!.toString()).to.equal('root:*:1::::::\n');
    expect((await g.lstat('/etc/hostname'))!.type).to.equal('file');
    expect((await g.readFile('/etc/hostname'))!.toString()).to.equal('n1\n');
    expect((await g.lstat('/etc/rel'))!.type).to.equal('file');
  });
  it('refuses to write over a directory', async () => {
    const g = new MemoryGuest({ '/etc/hostname': { dir: true } });
    let err: unknown;
    try { await g.writeFile('/etc/hostname', Buffer.from('n1\n'), attrs); } catch (e) { err = e; }
    expect(String(err)).to.match(/is a directory/);
  });
});
