/**
 * Property tests (fast-check) for what the rest of the code trusts: profile
 * merging, path resolution inside a rootfs root and inside a guestfs guest
 * (against a fake appliance), address/CIDR parsing, shard
 * assignment. The seed is printed and can be replayed with TRUST_SEED=N.
 * (Shard coverage and stability of single names are also in test/unit/core.test.ts.)
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MemoryGuest, type MemorySpec } from '../../src/backends/memory.js';
import { RootfsGuest } from '../../src/backends/rootfs.js';
import { GuestfsGuest } from '../../src/backends/guestfs/guest.js';
import { GuestfsError, type Arg, type GuestfsSession } from '../../src/backends/guestfs/session.js';
import { selectShard, shardOf } from '../../src/fleet/shard.js';
import { contains, networkOf, parseCidr, parseIp } from '../../src/network/ip.js';
import { mergeInto, originOf } from '../../src/profile/profile-merge.js';
import { type Traced } from '../../src/core/machine.js';
import type { SourceFile } from '../../src/core/machine.js';
import { treeDigest } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { count } from '../helpers/trust-counts.js';

const SEED = process.env.TRUST_SEED ? Number(process.env.TRUST_SEED) : Date.now() % 2 ** 31;

/** fc.assert with the suite's seed, counting the runs. */
async function check<T>(prop: fc.IProperty<T> | fc.IAsyncProperty<T>, numRuns: number): Promise<void> {
  count('propertyRuns', numRuns);
  await fc.assert(prop as fc.IAsyncProperty<T>, { seed: SEED, numRuns });
}

const src = (file: string) => ({ file }) as unknown as SourceFile;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The documented rule, written the obvious way: maps merge deeply, lists and scalars replace. */
function refMerge(a: unknown, b: unknown): unknown {
  if (!isObj(a) || !isObj(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObj(v) && isObj(a[k]) ? refMerge(a[k], v) : v;
  return out;
}

const KEYS = ['a', 'b', 'c', 'site', 'ssh', 'net'];
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null),
    fc.array(tie('node'), { maxLength: 3 }), tie('map')),
  map: fc.dictionary(fc.constantFrom(...KEYS), tie('node'), { maxKeys: 4 }),
})) as { node: fc.Arbitrary<unknown>; map: fc.Arbitrary<Record<string, unknown>> };

describe(`trust: properties (fast-check seed ${SEED})`, () => {
  before(() => console.log(`      fast-check seed: ${SEED} (replay: TRUST_SEED=${SEED})`));

  describe('profile merging (src/profile/profile-merge.ts)', () => {
    it('equals the reference deep merge, never mutates or aliases the overlay, and is idempotent', async () => {
      await check(fc.property(value.map, value.map, (a, b) => {
        const bCopy = structuredClone(b);
        const t: Traced<Record<string, unknown>> = { value: structuredClone(a), origins: new Map() };
        mergeInto(t, b, src('over.yaml'));
        expect(t.value).to.deep.equal(refMerge(a, b));
        expect(b).to.deep.equal(bCopy);
        // idempotent: merging the same overlay again changes nothing
        const again: Traced<Record<string, unknown>> = { value: structuredClone(t.value), origins: new Map() };
        mergeInto(again, b, src('over.yaml'));
        expect(again.value).to.deep.equal(t.value);
        // no aliasing: changing the result leaves the overlay alone
        for (const k of Object.keys(t.value)) if (isObj(t.value[k])) (t.value[k] as Record<string, unknown>).__x = 1;
        expect(b).to.deep.equal(bCopy);
      }), 400);
    });

    it('attributes every value the overlay set to the overlay file, the others to the base', async () => {
      await check(fc.property(value.map, value.map, (a, b) => {
        const t: Traced<Record<string, unknown>> = { value: structuredClone(a), origins: new Map() };
        mergeInto(t, a, src('base.yaml'));
        mergeInto(t, b, src('over.yaml'));
        const walk = (v: unknown, over: unknown, at: string[]): void => {
          if (!isObj(v)) return;
          for (const [k, x] of Object.entries(v)) {
            const here = [...at, k];
            const fromOver = isObj(over) && k in over;
            if (!isObj(x) || !fromOver || !isObj((over as Record<string, unknown>)[k])) {
              const o = originOf(t.origins, '/' + here.join('/'));
              expect(o?.source.file, here.join('/')).to.equal(fromOver ? 'over.yaml' : 'base.yaml');
            } else walk(x, (over as Record<string, unknown>)[k], here);
          }
        };
        walk(t.value, b, []);
      }), 300);
    });
  });

  describe('path resolution inside the root (rootfs backend)', () => {
    const NAMES = ['a', 'b', 'etc', 'x'];
    // 'm' never exists: links through a missing directory and back out with '..' (m/../a) once escaped
    const component = fc.constantFrom('a', 'b', 'etc', 'x', '..', '.', '...', 'm', 'OUT');
    const linkTarget = fc.tuple(fc.boolean(), fc.array(component, { minLength: 1, maxLength: 5 }));
    type Kind = { kind: 'file' } | { kind: 'dir'; children: Record<string, { kind: 'file' } | { kind: 'link'; to: [boolean, string[]] }> } | { kind: 'link'; to: [boolean, string[]] };
    const child = fc.oneof(fc.constant({ kind: 'file' as const }), linkTarget.map((to) => ({ kind: 'link' as const, to })));
    const top: fc.Arbitrary<Kind> = fc.oneof(
      fc.constant({ kind: 'file' as const }),
      fc.dictionary(fc.constantFrom(...NAMES), child, { maxKeys: 3 }).map((children) => ({ kind: 'dir' as const, children })),
      linkTarget.map((to) => ({ kind: 'link' as const, to })),
    );
    const tree = fc.dictionary(fc.constantFrom(...NAMES), top, { minKeys: 1, maxKeys: 4 });
    const query = fc.array(component, { minLength: 1, maxLength: 5 });

    it('reads what a chrooted reader would (same as the in-memory model), never outside; writes land inside', async () => {
      const base = tempDir('ghostprep-prop-');
      const outside = path.join(base, 'OUT');
      let n = 0;
      try {
        await check(fc.asyncProperty(tree, fc.array(query, { minLength: 1, maxLength: 6 }), async (spec, queries) => {
          const root = path.join(base, `r${n++}`);
          mkdirSync(root);
          rmSync(outside, { recursive: true, force: true });
          mkdirSync(path.join(outside, 'a'), { recursive: true });
          writeFileSync(path.join(outside, 'x'), 'OUTSIDE');
          writeFileSync(path.join(outside, 'a', 'x'), 'OUTSIDE');
          const mem: Record<string, MemorySpec> = {};
          const target = ([abs, parts]: [boolean, string[]]) => (abs ? '/' : '') + parts.map((p) => (p === 'OUT' ? outside.slice(1) : p)).join('/');
          for (const [name, k] of Object.entries(spec)) {
            const host = path.join(root, name);
            if (k.kind === 'file') { writeFileSync(host, `file ${name}`); mem[`/${name}`] = `file ${name}`; }
            if (k.kind === 'link') { symlinkSync(target(k.to), host); mem[`/${name}`] = { symlink: target(k.to) }; }
            if (k.kind === 'dir') {
              mkdirSync(host);
              mem[`/${name}`] = { dir: true };
              for (const [c, ck] of Object.entries(k.children)) {
                if (ck.kind === 'file') { writeFileSync(path.join(host, c), `file ${name}/${c}`); mem[`/${name}/${c}`] = `file ${name}/${c}`; }
                else { symlinkSync(target(ck.to), path.join(host, c)); mem[`/${name}/${c}`] = { symlink: target(ck.to) }; }
              }
            }
          }
          const before = treeDigest(outside);
          const g = new RootfsGuest(root, false);
          const model = new MemoryGuest(mem);
          const outcome = async (f: () => Promise<Buffer | null>) => f().then((b) => (b === null ? 'absent' : b.toString()), () => 'error');
          const paths = queries.map((q) => '/' + q.map((c) => (c === 'OUT' ? outside.slice(1) : c)).join('/'));
          for (const p of paths) {
            for (const follow of [true, false]) {
              const resolved = await g.resolve(p, follow).catch(() => root);
              const rel = path.relative(root, resolved);
              expect(rel === '..' || rel.startsWith('../') || path.isAbsolute(rel), `${p} -> ${resolved}`).to.equal(false);
            }
            expect(await outcome(() => g.readFile(p)), p).to.equal(await outcome(() => model.readFile(p)));
            expect((await g.readFile(p).catch(() => null))?.toString()).to.not.equal('OUTSIDE');
          }
          // then writes through the same hostile paths (the model no longer matches: only containment counts)
          for (const p of paths) {
            await g.writeFile(p, Buffer.from('W'), { mode: 0o644, uid: 0, gid: 0 }).catch(() => undefined);
            await g.mkdir(p + '/d', { mode: 0o755, uid: 0, gid: 0 }).catch(() => undefined);
            await g.remove(p).catch(() => undefined);
          }
          expect(treeDigest(outside), 'outside the root').to.equal(before);
          rmSync(root, { recursive: true, force: true });
        }), 150);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    });
  });

  describe('path resolution inside the guest (guestfs backend, against a fake appliance)', () => {
    // the same kind of hostile trees as above, served by a fake session answering lstatns / readlink /
    // pread from the in-memory model: pure logic, no appliance
    const NAMES = ['a', 'b', 'etc', 'x'];
    const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0o010000 } as const;
    const trees = (targetParts: fc.Arbitrary<string>) => {
      const linkTarget = fc.tuple(fc.boolean(), fc.array(targetParts, { minLength: 1, maxLength: 5 }));
      const child = fc.oneof(fc.constant({ kind: 'file' as const }), linkTarget.map((to) => ({ kind: 'link' as const, to })));
      const top = fc.oneof(
        fc.constant({ kind: 'file' as const }),
        fc.dictionary(fc.constantFrom(...NAMES), child, { maxKeys: 3 }).map((children) => ({ kind: 'dir' as const, children })),
        linkTarget.map((to) => ({ kind: 'link' as const, to })),
      );
      return fc.dictionary(fc.constantFrom(...NAMES), top, { minKeys: 1, maxKeys: 4 });
    };
    type Spec = typeof trees extends (a: never) => fc.Arbitrary<infer T> ? T : never;
    const query = fc.array(fc.constantFrom('a', 'b', 'etc', 'x', '..', '.', '...', 'm'), { minLength: 1, maxLength: 5 });

    function modelOf(spec: Spec): MemoryGuest {
      const mem: Record<string, MemorySpec> = {};
      const target = ([abs, parts]: [boolean, string[]]) => (abs ? '/' : '') + parts.join('/');
      for (const [name, k] of Object.entries(spec)) {
        if (k.kind === 'file') mem[`/${name}`] = `file ${name}`;
        if (k.kind === 'link') mem[`/${name}`] = { symlink: target(k.to) };
        if (k.kind === 'dir') {
          mem[`/${name}`] = { dir: true };
          for (const [c, ck] of Object.entries(k.children)) mem[`/${name}/${c}`] = ck.kind === 'file' ? `file ${name}/${c}` : { symlink: target(ck.to) };
        }
      }
      return new MemoryGuest(mem);
    }

    /** A GuestfsSession for GuestfsGuest's reads, answering from `model`; records the paths asked. */
    function fakeSession(model: MemoryGuest, asked: string[]): GuestfsSession {
      const absent = (cmd: string, p: string) => new GuestfsError(`${cmd}: ${p}: No such file or directory`, `${cmd} ${p}`, `${cmd}: ${p}: No such file or directory`);
      return {
        fields: async (cmd: string, args: readonly Arg[]) => {
          const p = String(args[0]);
          asked.push(p);
          const st = await model.lstat(p);
          if (!st) throw absent(cmd, p);
          return { st_mode: String(TYPE_BITS[st.type] | st.mode), st_uid: String(st.uid), st_gid: String(st.gid), st_size: String(st.size) };
        },
        text: async (cmd: string, args: readonly Arg[]) => {
          asked.push(String(args[0]));
          const t = await model.readlink(String(args[0]));
          if (t === null) throw absent(cmd, String(args[0]));
          return t;
        },
        command: async (cmd: string, args: readonly Arg[]) => {
          if (cmd !== 'pread') throw new Error(`fake session: ${cmd} not served`);
          asked.push(String(args[0]));
          const data = await model.readFile(String(args[0]));
          if (!data) throw absent(cmd, String(args[0]));
          return data.subarray(Number(args[2]), Number(args[2]) + Number(args[1]));
        },
      } as unknown as GuestfsSession;
    }

    const outcome = async (f: () => Promise<unknown>) => f().then((v) => (v === null ? 'absent' : Buffer.isBuffer(v) ? v.toString() : String(v)), () => 'error');

    /** Resolve and read each query through GuestfsGuest and the model; the differences, and the paths the appliance was asked. */
    async function compare(spec: Spec, queries: string[][]): Promise<{ diffs: string[]; asked: string[]; model: MemoryGuest }> {
      const model = modelOf(spec);
      const asked: string[] = [];
      const g = new GuestfsGuest(fakeSession(model, asked), 'fake', true);
      const diffs: string[] = [];
      for (const q of queries) {
        const p = '/' + q.join('/');
        for (const follow of [true, false]) {
          const [got, want] = [await outcome(() => g.resolve(p, follow)), await outcome(async () => model.resolve(p, follow))];
          if (got !== want) diffs.push(`resolve(${p}, ${follow}): ${got}, chroot model: ${want}`);
        }
        const [got, want] = [await outcome(() => g.readFile(p)), await outcome(() => model.readFile(p))];
        if (got !== want) diffs.push(`readFile(${p}): ${got}, chroot model: ${want}`);
      }
      return { diffs, asked, model };
    }

    it('only ever asks the appliance about absolute, normalized paths whose directories hold no link (whatever the links)', async () => {
      await check(fc.asyncProperty(trees(fc.constantFrom('a', 'b', 'etc', 'x', '..', '.', '...', 'm')), fc.array(query, { minLength: 1, maxLength: 6 }), async (spec, queries) => {
        const { asked, model } = await compare(spec, queries);
        for (const p of asked) {
          expect(p, 'normalized absolute').to.equal(path.posix.resolve('/', p));
          const parent = path.posix.dirname(p);
          expect(model.resolve(parent, true), `${p}: a link in its directories`).to.equal(parent);
        }
      }), 300);
    });

    it('resolves and reads what the in-memory model (chroot semantics) does, for link targets without ..', async () => {
      await check(fc.asyncProperty(trees(fc.constantFrom('a', 'b', 'etc', 'x', '.', '...', 'm')), fc.array(query, { minLength: 1, maxLength: 6 }), async (spec, queries) => {
        const { diffs } = await compare(spec, queries);
        expect(diffs, diffs.join('\n')).to.deep.equal([]);
      }), 300);
    });

    it('link targets with .. are walked like the kernel does: the same as the chroot model', async () => {
      // `x -> x/..` is a loop in the booted guest; `x -> y/../a` with y -> /etc leads to /a via /etc/..,
      // and with y -> /etc/ssh to /etc/a (a lexical reading would give /a)
      const loop = await compare({ x: { kind: 'link', to: [false, ['x', '..']] } } as unknown as Spec, [['x']]);
      expect(loop.diffs).to.deep.equal([]);
      expect(await outcome(() => new GuestfsGuest(fakeSession(loop.model, []), 'fake', true).resolve('/x', true))).to.equal('error');
      await check(fc.asyncProperty(trees(fc.constantFrom('a', 'b', 'etc', 'x', '..', '.', 'm')), fc.array(query, { minLength: 1, maxLength: 6 }), async (spec, queries) => {
        const { diffs } = await compare(spec, queries);
        expect(diffs, diffs.join('\n')).to.deep.equal([]);
      }), 300);
    });
  });

  describe('address and CIDR validation (src/network/ip.ts)', () => {
    it('accepts exactly the dotted-quad IPv4 and zone-less IPv6 that node:net accepts, with canonical round trips', async () => {
      await check(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat(140), (ip, prefix) => {
        const max = net.isIPv4(ip) ? 32 : 128;
        const c = parseCidr(`${ip}/${prefix}`);
        if (prefix > max) { expect(c).to.equal(null); return; }
        expect(c, ip).to.not.equal(null);
        expect(c!.family).to.equal(net.isIPv4(ip) ? 4 : 6);
        expect(parseCidr(c!.cidr)).to.deep.equal(c); // canonical form is a fixed point
        expect(contains(c!, c!.ip)).to.equal(true);
        // the network address is inside, and is its own network
        const netw = parseCidr(networkOf(c!))!;
        expect(contains(c!, netw.ip)).to.equal(true);
        expect(networkOf(netw)).to.equal(networkOf(c!));
      }), 1500);
    });

    it('never throws on any string, and never accepts what node:net rejects (hex, octal, short forms, zones, a prefix with a leading zero)', async () => {
      const weird = fc.oneof(fc.string({ maxLength: 40 }), fc.ipV4Extended(), fc.ipV6().map((ip) => `${ip}%eth0`),
        fc.tuple(fc.ipV4(), fc.constantFrom('', ' ', '\n', '/24\n', '/024', '/+8', '/-1', '/ 8')).map(([a, s]) => a + s));
      await check(fc.property(weird, fc.nat(40), (text, prefix) => {
        for (const t of [text, `${text}/${prefix}`]) {
          const c = parseCidr(t);
          if (c) {
            const [ip, p] = t.split('/');
            expect(net.isIP(ip!), t).to.not.equal(0);
            expect(ip, t).to.not.include('%');
            expect(p, t).to.match(/^(0|[1-9]\d{0,2})$/); // no leading zero: iproute2 would read "/024" as octal 20
            expect(Number(p), t).to.equal(c.prefix);
          }
        }
        const ip = parseIp(text);
        if (ip) expect(net.isIP(text), text).to.not.equal(0);
      }), 3000);
    });

    it('contains() agrees with comparing network addresses', async () => {
      await check(fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (a, b, prefix) => {
        const na = parseCidr(`${a}/${prefix}`)!;
        const same = networkOf(na) === networkOf(parseCidr(`${b}/${prefix}`)!);
        expect(contains(na, b), `${a}/${prefix} ∋ ${b}`).to.equal(same);
      }), 1500);
    });
  });

  describe('shard assignment (src/fleet/shard.ts)', () => {
    const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 16 }), { minLength: 1, maxLength: 300 });
    it('covers every machine exactly once, independently of the other machines and of their order', async () => {
      await check(fc.property(names, fc.integer({ min: 1, max: 16 }), fc.integer(), (list, n, salt) => {
        const machines = list.map((name) => ({ name }));
        const shuffled = [...machines].sort((x, y) => (shardOf(x.name + salt, 7) - shardOf(y.name + salt, 7)));
        const parts = Array.from({ length: n }, (_, i) => selectShard(machines, { index: i, count: n }));
        expect(parts.reduce((s, p) => s + p.length, 0)).to.equal(machines.length);
        expect(new Set(parts.flat()).size).to.equal(machines.length);
        for (let i = 0; i < n; i++) {
          // the same machines whatever the order or the rest of the inventory
          expect(selectShard(shuffled, { index: i, count: n }).map((m) => m.name).sort()).to.deep.equal(parts[i]!.map((m) => m.name).sort());
          const half = machines.slice(0, Math.ceil(machines.length / 2));
          expect(selectShard(half, { index: i, count: n })).to.deep.equal(parts[i]!.filter((m) => half.includes(m)));
        }
      }), 200);
    });

    it('balances big inventories: every shard within 5 standard deviations of the mean (as random assignment would)', async () => {
      const style = fc.constantFrom('node{i}', 'rack{j}-n{i}', 'c{i}.example.org', '{h}');
      await check(fc.property(style, fc.integer({ min: 2000, max: 5000 }), fc.integer({ min: 2, max: 12 }), fc.integer({ min: 0, max: 10 ** 6 }), (pattern, total, n, offset) => {
        const list = Array.from({ length: total }, (_, k) => {
          const i = k + offset;
          return { name: pattern.replace('{i}', String(i).padStart(5, '0')).replace('{j}', String(i % 40)).replace('{h}', (i * 2654435761 >>> 0).toString(36)) };
        });
        const sizes = Array.from({ length: n }, (_, i) => selectShard(list, { index: i, count: n }).length);
        const mean = total / n;
        // binomial: sd = sqrt(total p (1-p)); 2000 machines over 12 shards: within ±31 of 167
        const sd = Math.sqrt(total * (1 / n) * (1 - 1 / n));
        for (const s of sizes) expect(Math.abs(s - mean), `${pattern} ×${total} / ${n}: ${sizes.join(' ')}`).to.be.below(5 * sd);
      }), 60);
    });
  });
});
