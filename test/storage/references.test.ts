/**
 * storage.newUuids, pure logic: the reference rewrite (every old value
 * replaced, nothing else changed, idempotent), the derived identities and
 * the device-change plan. No appliance.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { mentionsAny, rewriteReferences, REFERENCE_FILES, matchComponent } from '../../src/storage/references.js';
import { deriveUuid, deriveVfatSerial, UUID_RE, VFAT_SERIAL_RE } from '../../src/storage/uuids.js';
import { planNewUuids, roleOf } from '../../src/storage/plan.js';
import { describeDeviceChange, reverseDeviceChange, type BlockDisk } from '../../src/storage/types.js';
import { REPO } from '../helpers/rootfs.js';

const FIXTURE = path.join(REPO, 'fixtures/storage');

/** The identities named in fixtures/storage/README.md -> new values. */
export const FIXTURE_IDS = new Map([
  ['0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', '11111111-2222-4333-8444-555555555555'],
  ['7A1C-33E0', 'ABCD-0123'],
  ['5e8d2c4a-1f7b-4c3e-a9d2-6b0e8f1c2d33', '66666666-7777-4888-9999-aaaaaaaaaaaa'],
  ['c0ffee00-1234-4abc-8def-0123456789ab', 'deadbeef-0000-4111-8222-333333333333'],
]);

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p, base) : ['/' + path.relative(base, p)];
  });
}

const hex = fc.constantFrom(...'0123456789abcdef');
const uuidArb = fc.array(hex, { minLength: 32, maxLength: 32 }).map((a) => {
  const h = a.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
});
const serialArb = fc.array(hex, { minLength: 8, maxLength: 8 }).map((a) => `${a.slice(0, 4).join('')}-${a.slice(4).join('')}`.toUpperCase());
/** Text around the ids: anything a config file could hold, ids from a small alphabet excluded by construction. */
const filler = fc.string({ unit: fc.constantFrom(' ', '\n', '=', '"', "'", '/', ',', '\t', 'x', 'U', 'I', 'D', '#', '-', '.', 'z', '{', ';'), maxLength: 12 });

describe('storage: reference rewrite', () => {
  it('rewrites every reference format of the fixture master and nothing else', () => {
    const files = walk(path.join(FIXTURE, 'master'));
    expect(files.length).to.be.greaterThan(8);
    for (const f of files) {
      const before = readFileSync(path.join(FIXTURE, 'master', f), 'utf8');
      const { text, count } = rewriteReferences(before, FIXTURE_IDS);
      const expected = readFileSync(path.join(FIXTURE, 'expected', f), 'utf8');
      expect(text, f).to.equal(expected);
      expect(count, f).to.be.greaterThan(0);
      expect(mentionsAny(text, FIXTURE_IDS.keys()), f).to.equal(false);
      // every file of the fixture is one REFERENCE_FILES names
      expect(REFERENCE_FILES.some((p) => p.split('/').length === f.split('/').length && p.split('/').every((c, i) => matchComponent(c, f.split('/')[i]!) || c === f.split('/')[i])), f).to.equal(true);
    }
  });

  it('keeps the letter case of each occurrence, the LUKS UUID it was not given, and longer tokens', () => {
    const fstab = rewriteReferences(readFileSync(path.join(FIXTURE, 'master/etc/fstab'), 'utf8'), FIXTURE_IDS).text;
    expect(fstab).to.contain('/dev/disk/by-partuuid/DEADBEEF-0000-4111-8222-333333333333');
    expect(fstab).to.contain('PARTUUID=deadbeef-0000-4111-8222-333333333333');
    expect(fstab).to.contain('UUID=ABCD-0123');
    expect(fstab).to.contain('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11x');
    const crypttab = rewriteReferences(readFileSync(path.join(FIXTURE, 'master/etc/crypttab'), 'utf8'), FIXTURE_IDS).text;
    expect(crypttab).to.contain('UUID=9a9a9a9a-0000-4000-8000-000000000001');
  });

  it('property: every old value replaced, nothing else changed, reversible, idempotent', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.oneof(uuidArb, serialArb), { minLength: 1, maxLength: 4, selector: (s) => s.toLowerCase() }),
      fc.array(fc.tuple(filler, fc.nat(3), fc.constantFrom('lower', 'upper')), { maxLength: 10 }),
      filler,
      (olds, pieces, tail) => {
        const ids = new Map(olds.map((o, i) => [o, deriveUuid('m', `r${i}`)]));
        // a text of filler and whole-token occurrences (filler never ends in a token char before an id... separate with a space)
        let text = '';
        let occurrences = 0;
        const parts: Array<{ filler: string; id?: number; upper: boolean }> = [];
        for (const [f, n, c] of pieces) {
          const id = n % olds.length;
          parts.push({ filler: f, id, upper: c === 'upper' });
          text += `${f} ${c === 'upper' ? olds[id]!.toUpperCase() : olds[id]!.toLowerCase()} `;
          occurrences++;
        }
        text += tail;
        const { text: out, count } = rewriteReferences(text, ids);
        expect(count).to.equal(occurrences);
        expect(mentionsAny(out, ids.keys())).to.equal(false);
        // nothing else changed: the text rebuilt with the new values is the output
        let rebuilt = '';
        for (const p of parts) {
          const v = ids.get(olds[p.id!]!)!;
          // an occurrence without letters has no case to keep: the new value as derived (lowercase)
          rebuilt += `${p.filler} ${p.upper && /[a-f]/i.test(olds[p.id!]!) ? v.toUpperCase() : v.toLowerCase()} `;
        }
        expect(out).to.equal(rebuilt + tail);
        // idempotent: the new values are not old ones
        expect(rewriteReferences(out, ids).text).to.equal(out);
        // reversible: the map swapped gives back the original (in lower/upper case as written)
        const back = rewriteReferences(out, new Map([...ids].map(([a, b]) => [b, a])));
        expect(back.text.toLowerCase()).to.equal(text.toLowerCase());
      },
    ), { numRuns: 300 });
  });

  it('property: a text without any old value as a token is returned unchanged', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), uuidArb, (text, old) => {
      fc.pre(!text.toLowerCase().includes(old));
      const { text: out, count } = rewriteReferences(text, new Map([[old, deriveUuid('m', 'x')]]));
      expect(count).to.equal(0);
      expect(out).to.equal(text);
    }), { numRuns: 300 });
  });

  it('a value next to a letter, digit, `_` or a following `-` is part of a longer token and stays', () => {
    const old = '0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11';
    const ids = new Map([[old, deriveUuid('m', 'r')]]);
    for (const t of [`x${old}`, `${old}x`, `_${old}`, `${old}-1`, `9${old}`]) expect(rewriteReferences(t, ids).count, t).to.equal(0);
    for (const t of [`luks-${old}`, `"${old}"`, `UUID=${old}`, `/${old}`, `${old}\n`]) expect(rewriteReferences(t, ids).count, t).to.equal(1);
  });
});

describe('storage: derived identities and the device-change plan', () => {
  const disk = (uuid: string, guid: string): BlockDisk => ({
    device: '/dev/sdc', table: 'gpt', diskGuid: guid.toUpperCase(),
    volumes: [
      { device: '/dev/sdc1', fstype: 'vfat', uuid: '7A1C-33E0', label: 'EFI', partnum: 1, partGuid: '11111111-0000-4000-8000-000000000001' },
      { device: '/dev/sdc2', fstype: 'ext4', uuid, label: '', partnum: 2, partGuid: '11111111-0000-4000-8000-000000000002' },
      { device: '/dev/sdc3', fstype: 'swap', uuid: '5e8d2c4a-1f7b-4c3e-a9d2-6b0e8f1c2d33', label: 'swap', partnum: 3, partGuid: '11111111-0000-4000-8000-000000000003' },
      { device: '/dev/sdc4', fstype: 'LVM2_member', uuid: 'abc', label: '', partnum: 4, partGuid: '11111111-0000-4000-8000-000000000004' },
    ],
  });

  it('derives UUID-shaped values (version 4, RFC variant) and vfat serials, stable per machine and role', () => {
    fc.assert(fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (m, r) => {
      const u = deriveUuid(m, r);
      expect(u).to.match(UUID_RE);
      expect(u[14]).to.equal('4');
      expect('89ab').to.contain(u[19]);
      expect(deriveUuid(m, r)).to.equal(u);
      expect(deriveVfatSerial(m, r)).to.match(VFAT_SERIAL_RE);
    }), { numRuns: 200 });
  });

  it('plans one change per filesystem, partition and disk, skips LVM, and is the same on every plan', () => {
    const p = planNewUuids('node01', [disk('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', 'aaaaaaaa-0000-4000-8000-00000000000a')]);
    expect(p.changes.map((c) => `${c.op} ${c.device}`)).to.deep.equal([
      'disk-guid /dev/sdc',
      'part-guid /dev/sdc1', 'fs-uuid /dev/sdc1',
      'part-guid /dev/sdc2', 'fs-uuid /dev/sdc2',
      'part-guid /dev/sdc3', 'fs-uuid /dev/sdc3',
      'part-guid /dev/sdc4',
    ]);
    expect(p.skipped).to.deep.equal([{ device: '/dev/sdc4', fstype: 'LVM2_member', by: 'storage.lvm', message: '/dev/sdc4 (LVM2_member): its identity is not changed by storage.newUuids (storage.lvm renews it)' }]);
    const vfat = p.changes.find((c) => c.op === 'fs-uuid' && c.fstype === 'vfat')!;
    expect(vfat.to).to.match(VFAT_SERIAL_RE);
    const swap = p.changes.find((c) => c.op === 'fs-uuid' && c.fstype === 'swap')!;
    expect(swap).to.include({ label: 'swap' });
    expect(planNewUuids('node01', [disk('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', 'aaaaaaaa-0000-4000-8000-00000000000a')])).to.deep.equal(p);
    // the disk GUID is not a reference in files; every fs UUID and partition GUID is
    expect(p.ids.size).to.equal(7);
  });

  it('a clone planned again after apply plans nothing (its values are the derived ones already)', () => {
    const first = planNewUuids('node01', [disk('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', 'aaaaaaaa-0000-4000-8000-00000000000a')]);
    const to = (op: string, dev: string) => first.changes.find((c) => c.op === op && c.device === dev)!.to;
    const applied: BlockDisk = {
      device: '/dev/sda', table: 'gpt', diskGuid: to('disk-guid', '/dev/sdc').toUpperCase(),
      volumes: [1, 2, 3].map((n) => ({ device: `/dev/sda${n}`, fstype: ['vfat', 'ext4', 'swap'][n - 1]!, uuid: to('fs-uuid', `/dev/sdc${n}`), label: '', partnum: n, partGuid: to('part-guid', `/dev/sdc${n}`) })),
    };
    expect(planNewUuids('node01', [applied]).changes).to.deep.equal([]);
  });

  it('property: machines of one master get pairwise distinct identities', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 2, maxLength: 30 }), (names) => {
      const seen = new Set<string>();
      for (const n of names) {
        for (const c of planNewUuids(n, [disk('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', 'aaaaaaaa-0000-4000-8000-00000000000a')]).changes) {
          if (c.op === 'fs-uuid' && c.fstype === 'vfat') continue; // 32 bits: distinct with overwhelming odds, not checked here
          expect(seen.has(c.to), `${n} ${c.op} ${c.device}`).to.equal(false);
          seen.add(c.to);
        }
      }
    }), { numRuns: 50 });
  });

  it('roles name the place on the disk, not the appliance device', () => {
    expect(roleOf('/dev/sdc', '/dev/sdc2')).to.equal('p2');
    expect(roleOf('/dev/sdab', '/dev/sdab12')).to.equal('p12');
    expect(roleOf('/dev/sda', '/dev/sda')).to.equal('disk');
    const c = { op: 'fs-uuid', device: '/dev/sda2', fstype: 'ext4', from: 'a', to: 'b', source: 's' } as const;
    expect(reverseDeviceChange(c)).to.include({ from: 'b', to: 'a' });
    expect(describeDeviceChange(c)).to.equal('device /dev/sda2: ext4 UUID a -> b');
  });
});
