/**
 * One record per operation: each carries its name, kind, description,
 * default, order (customize) and the guests it applies to. The registry
 * refuses incomplete records, a name registered twice and two operations at
 * one order, lists names sorted and gives the customize operations in run
 * order; the assembler never calls an operation on a guest it does not name;
 * `ghostprep operations`, `seal --list` and the manual's tables show what
 * the records say.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MemoryGuest } from '../../src/backends/memory.js';
import type { Distro, Family } from '../../src/core/distro.js';
import { operations, summarize, GUEST_KINDS, type CustomizeOperation, type Operation, type OperationContext, type OperationSummary } from '../../src/operations/index.js';
import { OperationRegistry, appliesTo } from '../../src/operations/registry.js';
import { guestKindOf } from '../../src/core/operation.js';
import { assemblePlan } from '../../src/plan/assemble.js';
import { ghostprep } from '../helpers/cli.js';
import { REPO } from '../helpers/rootfs.js';

const FAMILIES: readonly Family[] = ['debian', 'rhel', 'suse', 'arch', 'alpine', 'windows', 'unknown'];
const distroOf = (family: Family): Distro => ({ id: family, idLike: [], versionId: '', name: family, family, major: undefined });

/** A complete customize record, to be broken one field at a time. */
const customize = (name: string, order: number, extra: Record<string, unknown> = {}): Operation =>
  ({ name, kind: 'customize', description: `${name} things`, defaultEnabled: true, order, guests: ['linux'], plan: async () => [], ...extra }) as Operation;
const seal = (name: string, extra: Record<string, unknown> = {}): Operation =>
  ({ name, kind: 'seal', description: `${name} things`, defaultEnabled: true, guests: ['linux'], plan: async () => [], ...extra }) as Operation;
const without = (op: Operation, field: string): Operation => {
  const copy: Record<string, unknown> = { ...op };
  delete copy[field];
  return copy as unknown as Operation;
};
const registering = (...ops: Operation[]) => () => { const r = new OperationRegistry(); for (const op of ops) r.register(op); };

describe('operation records', () => {
  it('run in the order the records set: the customize order ghostprep has always used', () => {
    expect(operations.runOrder().map((o) => o.name)).to.deep.equal([
      'hostname', 'machine-id', 'ssh-host-keys', 'users', 'authorized-keys', 'timezone', 'network', 'cloud-init-seed', 'clone-state', 'firstboot',
      'windows-computer-name', 'windows-unattend', 'windows-run-once', 'windows-ids', 'storage-references', 'windows-activation', 'files', 'delete',
    ]);
  });

  it('say which guests they apply to: Linux identity on Linux, windows-* on Windows, files and delete on both, seal on Linux', () => {
    const guests = Object.fromEntries(operations.list().map((o) => [`${o.kind}:${o.name}`, o.guests.join(',')]));
    for (const [key, g] of Object.entries(guests)) {
      const name = key.split(':')[1]!;
      const expected = key.startsWith('seal:') ? 'linux' : name.startsWith('windows-') ? 'windows' : ['files', 'delete'].includes(name) ? 'linux,windows' : 'linux';
      expect(g, key).to.equal(expected);
    }
  });

  it('are complete: every registered operation has a description, a default, known guests, and (customize) a unique order', () => {
    for (const op of operations.list()) {
      expect(op.description.trim(), op.name).to.not.equal('');
      expect(op.defaultEnabled, op.name).to.be.a('boolean');
      expect(op.guests, op.name).to.not.be.empty;
      for (const g of op.guests) expect(GUEST_KINDS, op.name).to.include(g);
      if (op.kind === 'customize') expect(op.order, op.name).to.be.a('number');
      else expect(op.order, op.name).to.equal(undefined);
    }
    const orders = operations.list('customize').map((o) => o.order);
    expect(new Set(orders).size).to.equal(orders.length);
  });

  it('a Windows family is a Windows guest, every other family a Linux one', () => {
    for (const f of FAMILIES) expect(guestKindOf(distroOf(f))).to.equal(f === 'windows' ? 'windows' : 'linux');
  });
});

describe('the operation registry', () => {
  it('refuses a customize operation without an order, or with one that is not a positive integer', () => {
    expect(registering(without(customize('a', 10), 'order'))).to.throw(/customize operation "a" cannot be registered: it has no order/);
    for (const bad of [0, -10, 1.5, Number.NaN, '10']) expect(registering(customize('a', bad as number)), String(bad)).to.throw(/its order .* is not a positive integer/);
  });

  it('refuses an operation that does not say which guests it applies to, or names an unknown one', () => {
    expect(registering(without(customize('a', 10), 'guests'))).to.throw(/"a" cannot be registered: it does not say which guests it applies to/);
    expect(registering(customize('a', 10, { guests: [] }))).to.throw(/does not say which guests/);
    expect(registering(seal('s', { guests: [] }))).to.throw(/seal operation "s" cannot be registered: it does not say which guests/);
    expect(registering(customize('a', 10, { guests: ['bsd'] }))).to.throw(/its guests name "bsd", not one of linux, windows/);
    expect(registering(customize('a', 10, { guests: ['linux', 'linux'] }))).to.throw(/one guest twice/);
  });

  it('refuses a record without a description, a default or a plan function, and a seal operation with an order', () => {
    expect(registering(without(customize('a', 10), 'description'))).to.throw(/no description/);
    expect(registering(without(customize('a', 10), 'defaultEnabled'))).to.throw(/on by default/);
    expect(registering(without(customize('a', 10), 'plan'))).to.throw(/no plan function/);
    expect(registering(seal('s', { order: 5 }))).to.throw(/seal operations run by name and take no order/);
    expect(registering(customize('Not A Name', 10))).to.throw(/lowercase words/);
  });

  it('refuses a name registered twice within a kind, and accepts one name in both kinds', () => {
    expect(registering(customize('a', 10), customize('a', 20))).to.throw('customize operation "a" is registered twice');
    expect(registering(seal('s'), seal('s'))).to.throw('seal operation "s" is registered twice');
    expect(registering(customize('machine-id', 10), seal('machine-id'))).to.not.throw();
  });

  it('refuses two customize operations at one order', () => {
    expect(registering(customize('a', 10), customize('b', 10))).to.throw('customize operations "a" and "b" both have order 10');
  });

  it('for any records: registers them iff names and orders are unique, lists names sorted, runs customize ones by order', () => {
    const record = fc.record({ name: fc.stringMatching(/^[a-f]{1,3}$/), kind: fc.constantFrom('customize' as const, 'seal' as const), order: fc.integer({ min: 1, max: 12 }) });
    fc.assert(fc.property(fc.array(record, { maxLength: 10 }), (recs) => {
      const ops = recs.map((r) => (r.kind === 'customize' ? customize(r.name, r.order) : seal(r.name)));
      const keys = ops.map((o) => `${o.kind}:${o.name}`);
      const orders = ops.filter((o) => o.kind === 'customize').map((o) => o.order);
      const valid = new Set(keys).size === keys.length && new Set(orders).size === orders.length;
      const registry = new OperationRegistry();
      let threw = false;
      try { for (const op of ops) registry.register(op); } catch { threw = true; }
      expect(threw).to.equal(!valid);
      if (!valid) return;
      const names = registry.list().map((o) => o.name);
      expect(names).to.deep.equal([...names].sort((a, b) => a.localeCompare(b)));
      expect(registry.list('seal').every((o) => o.kind === 'seal')).to.equal(true);
      const run = registry.runOrder().map((o) => o.order);
      expect(run).to.deep.equal([...orders].sort((a, b) => a - b));
    }));
  });
});

describe('the assembler and the guests an operation names', () => {
  /** Replace every customize operation's plan by one that records its call; restore afterwards. */
  async function called(family: Family, enabled?: (name: string) => boolean): Promise<string[]> {
    const calls: string[] = [];
    const ops = operations.list('customize') as Array<CustomizeOperation & { plan: CustomizeOperation['plan'] }>;
    const saved = ops.map((op) => op.plan);
    ops.forEach((op) => { op.plan = async () => { calls.push(op.name); return []; }; });
    try {
      await assemblePlan({ guest: new MemoryGuest({}), distro: distroOf(family) } as unknown as OperationContext, enabled);
    } finally {
      ops.forEach((op, i) => { op.plan = saved[i]!; });
    }
    return calls;
  }

  it('calls, in run order, exactly the enabled operations that name the guest, for every family', async () => {
    for (const family of FAMILIES) {
      const want = operations.runOrder().filter((o) => appliesTo(o, distroOf(family))).map((o) => o.name);
      expect(await called(family), family).to.deep.equal(want);
    }
    expect(await called('windows')).to.deep.equal(['windows-computer-name', 'windows-unattend', 'windows-run-once', 'windows-ids', 'windows-activation', 'files', 'delete']);
    expect(await called('debian', (n) => n !== 'users' && n !== 'files')).to.deep.equal(['hostname', 'machine-id', 'ssh-host-keys', 'authorized-keys', 'timezone', 'network', 'cloud-init-seed', 'clone-state', 'firstboot', 'storage-references', 'delete']);
  });
});

describe('listings and tables from the records', () => {
  const expected = (): OperationSummary[] => [...operations.runOrder(), ...operations.list('seal')].map(summarize);

  it('`ghostprep operations --json` gives every record with its order and guests, customize in run order', () => {
    const r = ghostprep(['operations', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal(JSON.parse(JSON.stringify(expected())));
  });

  it('`ghostprep operations` prints one line per record: name, kind, order, guests, default mark, description', () => {
    const r = ghostprep(['operations']);
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trimEnd().split('\n');
    const want = expected();
    expect(lines).to.have.length(want.length);
    lines.forEach((line, i) => {
      const o = want[i]!;
      const [name, kind, order, guests] = line.split(/\s+/);
      expect([name, kind, order, guests], line).to.deep.equal([o.name, o.kind, String(o.order ?? '-'), o.guests.join(',')]);
      expect(line.endsWith(`${o.defaultEnabled ? '*' : ' '} ${o.description}`), line).to.equal(true);
    });
  });

  it('`seal --list --json` gives each seal record with its guests', () => {
    const r = ghostprep(['seal', '--list', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal(operations.list('seal').map((op) => { const { kind: _kind, ...rest } = summarize(op); return rest; }));
  });

  it('docs/operations.md shows each customize operation at its order with its guests, and each seal operation with its guests', () => {
    const page = readFileSync(path.join(REPO, 'docs/operations.md'), 'utf8');
    const table = (kind: string) => new RegExp(`<!-- operations: ${kind} -->\\n([\\s\\S]*?)<!-- /operations -->`).exec(page)![1]!;
    const customizeRows = [...table('customize').matchAll(/^\| (\d+) \| `([a-z-]+)` \| (?:on|off) \| ([a-z, ]+) \|/gm)].map((m) => [Number(m[1]), m[2], m[3]]);
    expect(customizeRows).to.deep.equal(operations.runOrder().map((o) => [o.order, o.name, o.guests.join(', ')]));
    const sealRows = [...table('seal').matchAll(/^\| `([a-z-]+)` \| (?:on|off) \| ([a-z, ]+) \|/gm)].map((m) => [m[1], m[2]]);
    expect(sealRows).to.deep.equal(operations.list('seal').map((o) => [o.name, o.guests.join(', ')]));
  });

  it('the docs generator refuses a record without guests, and a customize record without an order', async () => {
    const gen = (await import(pathToFileURL(path.join(REPO, 'scripts/gen-docs.mjs')).href)) as { operationsTable(records: unknown[], kind: string): string };
    const good = { name: 'a', kind: 'customize', description: 'a things', defaultEnabled: true, order: 10, guests: ['linux'] };
    expect(gen.operationsTable([good], 'customize')).to.include('| 10 | `a` | on | linux | a things |');
    expect(() => gen.operationsTable([{ ...good, guests: [] }], 'customize')).to.throw('customize operation "a" does not say which guests it applies to');
    expect(() => gen.operationsTable([{ ...good, guests: undefined }], 'customize')).to.throw(/which guests/);
    expect(() => gen.operationsTable([{ ...good, order: null }], 'customize')).to.throw('customize operation "a" has no order');
    expect(() => gen.operationsTable([{ ...good, kind: 'seal', order: null, guests: undefined }], 'seal')).to.throw('seal operation "a" does not say which guests it applies to');
  });
});
