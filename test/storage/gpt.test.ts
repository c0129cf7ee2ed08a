/**
 * GPT GUID edits (src/storage/gpt.ts) on tables made by the real fdisk, on
 * plain files, checked by fdisk again: over generated tables (sector size,
 * partition count) and generated sequences of edits, every edit lands in both
 * copies (the backup alone, with the primary destroyed, reads the same), the
 * table stays valid (fdisk reports no corruption), and no byte other than the
 * GUID edited and the CRCs changes. Any damage to a copy makes the table
 * unusable for editing, so that it is left to sgdisk.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { checkCopy, checkTable, editCopy, encodeGuid, entriesLength, formatGuid, parseGptHeader, partitionGuids, type GptCopy, type GuidEdit } from '../../src/storage/gpt.js';
import { tempDir } from '../helpers/images.js';
import { deviceSteps } from '../../src/backends/guestfs/storage-identity.js';
import type { DeviceChange } from '../../src/storage/types.js';

interface Disk { file: string; sectorSize: number }

async function makeDisk(dir: string, sectorSize: number, parts: number): Promise<Disk> {
  const file = path.join(dir, `d-${sectorSize}-${parts}-${randomUUID()}.img`);
  await fs.writeFile(file, '');
  await fs.truncate(file, 8 * 1024 * 1024 + 64 * sectorSize);
  // fdisk, not sfdisk: only fdisk takes a logical sector size for a plain file (-b)
  const input = `g\n${'n\n\n\n+16\n'.repeat(parts)}w\n`;
  await execa('fdisk', ['-b', String(sectorSize), file], { input, env: { LC_ALL: 'C' } });
  return { file, sectorSize };
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fd = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(length);
    await fd.read(b, 0, length, offset);
    return b;
  } finally { await fd.close(); }
}

async function writeAt(file: string, offset: number, bytes: Buffer): Promise<void> {
  const fd = await fs.open(file, 'r+');
  try { await fd.write(bytes, 0, bytes.length, offset); } finally { await fd.close(); }
}

async function copyAt(d: Disk, lba: bigint): Promise<GptCopy> {
  const header = await readAt(d.file, Number(lba) * d.sectorSize, d.sectorSize);
  const h = parseGptHeader(header);
  if (!h.ok) throw new Error(h.reason);
  return { header, entries: await readAt(d.file, Number(h.value.entriesLba) * d.sectorSize, entriesLength(h.value)) };
}

async function table(d: Disk): Promise<{ primary: GptCopy; backup: GptCopy }> {
  const primary = await copyAt(d, 1n);
  const h = parseGptHeader(primary.header);
  if (!h.ok) throw new Error(h.reason);
  return { primary, backup: await copyAt(d, h.value.backupLba) };
}

/** Edits written as the guestfs backend writes a disk's step: all in each copy at once, primary then backup. */
async function applyEdits(d: Disk, edits: readonly GuidEdit[]): Promise<void> {
  const t = await table(d);
  expect(checkTable(t.primary, t.backup).ok).to.equal(true);
  for (const copy of [t.primary, t.backup]) {
    const next = edits.reduce(editCopy, copy);
    const h = parseGptHeader(next.header);
    if (!h.ok) throw new Error(h.reason);
    await writeAt(d.file, Number(h.value.entriesLba) * d.sectorSize, next.entries);
    await writeAt(d.file, Number(h.value.currentLba) * d.sectorSize, next.header);
  }
}

interface FdiskView { id: string; uuids: string[]; stderr: string }

/** The disk identifier and partition UUIDs as fdisk lists them (and its warnings: a corrupt copy). */
async function fdisk(d: Disk): Promise<FdiskView> {
  const r = await execa('fdisk', ['-b', String(d.sectorSize), '-l', '-o', 'Device,UUID', d.file], { env: { LC_ALL: 'C' } });
  const id = /^Disk identifier: (\S+)$/m.exec(r.stdout)?.[1] ?? '';
  const uuids = r.stdout.split('\n').filter((l) => l.startsWith(d.file)).map((l) => l.split(/\s+/)[1]!.toLowerCase());
  return { id: id.toLowerCase(), uuids, stderr: r.stderr };
}

const guid = fc.uuid().map((u) => u.toLowerCase());

describe('GPT GUID edits (fdisk-made tables, read back by fdisk)', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => { dir = await tempDir(); });

  it('formatGuid and encodeGuid are inverse, with the first three fields little-endian', () => {
    fc.assert(fc.property(guid, (g) => formatGuid(encodeGuid(g)) === g));
    expect(encodeGuid('00112233-4455-6677-8899-aabbccddeeff').toString('hex')).to.equal('33221100554477668899aabbccddeeff');
    expect(() => encodeGuid('not-a-guid')).to.throw('not a GUID');
  });

  it('every sequence of edits lands in both copies; fdisk finds the table valid; only GUIDs and CRCs change', async () => {
    const editArb = (parts: number) => fc.oneof(
      guid.map((g): GuidEdit => ({ disk: g })),
      fc.tuple(fc.integer({ min: 1, max: parts }), guid).map(([partition, g]): GuidEdit => ({ partition, guid: g })),
    );
    const scenario = fc.tuple(fc.constantFrom(512, 4096), fc.integer({ min: 1, max: 5 }))
      .chain(([sectorSize, parts]) => fc.record({ sectorSize: fc.constant(sectorSize), parts: fc.constant(parts), edits: fc.array(editArb(parts), { minLength: 1, maxLength: 4 }) }));
    await fc.assert(fc.asyncProperty(scenario, async ({ sectorSize, parts, edits }) => {
      const d = await makeDisk(dir, sectorSize, parts);
      const before = await fs.readFile(d.file);
      const want = await fdisk(d);
      // the first edit alone, the others as one step
      await applyEdits(d, edits.slice(0, 1));
      if (edits.length > 1) await applyEdits(d, edits.slice(1));
      for (const e of edits) {
        if ('disk' in e) want.id = e.disk;
        else want.uuids[e.partition - 1] = e.guid;
      }
      const got = await fdisk(d);
      expect(got.stderr, 'fdisk warns').to.equal('');
      expect({ id: got.id, uuids: got.uuids }).to.deep.equal({ id: want.id, uuids: want.uuids });
      // what this module reads agrees with fdisk
      const t = await table(d);
      const h = checkTable(t.primary, t.backup);
      expect(h.ok).to.equal(true);
      if (h.ok) expect({ id: h.value.diskGuid, uuids: partitionGuids(h.value, t.primary.entries).map((p) => p.guid) }).to.deep.equal({ id: want.id, uuids: want.uuids });
      // only GUID fields and CRCs differ from the table fdisk wrote
      const after = await fs.readFile(d.file);
      const allowed = allowedOffsets(d, parseGptHeader(t.primary.header), parseGptHeader(t.backup.header), parts);
      for (let i = 0; i < after.length; i++) if (after[i] !== before[i] && !allowed.has(i)) expect.fail(`byte ${i} changed`);
      // the backup alone says the same: destroy the primary header, fdisk falls back to the backup
      await writeAt(d.file, d.sectorSize, Buffer.alloc(d.sectorSize));
      const backupOnly = await fdisk(d);
      expect(backupOnly.stderr).to.match(/corrupt/);
      expect({ id: backupOnly.id, uuids: backupOnly.uuids }).to.deep.equal({ id: want.id, uuids: want.uuids });
      await fs.rm(d.file);
    }), { numRuns: 25 });
  });

  it('any damaged byte of either copy makes the table unusable for editing', async () => {
    const d = await makeDisk(dir, 512, 3);
    const t = await table(d);
    const hp = parseGptHeader(t.primary.header);
    if (!hp.ok) throw new Error(hp.reason);
    const headerSize = hp.value.headerSize;
    fc.assert(fc.property(fc.boolean(), fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inBackup, inEntries, at, xor) => {
      const copy = inBackup ? t.backup : t.primary;
      const field = inEntries ? 'entries' : 'header';
      const bytes = Buffer.from(copy[field]);
      const i = at % (inEntries ? bytes.length : headerSize);
      bytes[i] = bytes[i]! ^ xor;
      const damaged = { ...copy, [field]: bytes };
      const r = inBackup ? checkTable(t.primary, damaged) : checkTable(damaged, t.backup);
      expect(r.ok, `${inBackup ? 'backup' : 'primary'} ${field} byte ${i}`).to.equal(false);
    }), { numRuns: 500 });
    // and a missing backup (a disk truncated after the table was made)
    expect(checkTable(t.primary, { header: Buffer.alloc(512), entries: t.backup.entries }).ok).to.equal(false);
  });

  it('refuses to edit a partition entry that is not used, and leaves its input alone', async () => {
    const d = await makeDisk(dir, 512, 2);
    const { primary } = await table(d);
    const copy = { header: Buffer.from(primary.header), entries: Buffer.from(primary.entries) };
    for (const partition of [0, 3, 128, 129, 1.5]) expect(() => editCopy(copy, { partition, guid: randomUUID() })).to.throw(`no partition ${partition}`);
    const edited = editCopy(copy, { partition: 2, guid: '01234567-89ab-cdef-0123-456789abcdef' });
    expect(copy.header.equals(primary.header) && copy.entries.equals(primary.entries)).to.equal(true);
    expect(checkCopy(edited).ok).to.equal(true);
  });
});

describe('device changes as steps (one GPT write per disk)', () => {
  it('every change in exactly one step; filesystem changes alone and in order; each disk\'s GPT changes together, in order', () => {
    const change = fc.oneof(
      fc.constantFrom('/dev/sda', '/dev/sdb').map((d): DeviceChange => ({ op: 'disk-guid', device: d, from: 'a', to: randomUUID(), source: 't' })),
      fc.tuple(fc.constantFrom('/dev/sda', '/dev/sdb'), fc.integer({ min: 1, max: 4 })).map(([d, n]): DeviceChange => ({ op: 'part-guid', device: `${d}${n}`, disk: d, partnum: n, from: 'a', to: randomUUID(), source: 't' })),
      fc.constantFrom('/dev/sda1', '/dev/sdb2').map((d): DeviceChange => ({ op: 'fs-uuid', device: d, fstype: 'ext4', from: 'a', to: randomUUID(), source: 't' })),
    );
    fc.assert(fc.property(fc.array(change, { maxLength: 12 }), (changes) => {
      const steps = deviceSteps(changes);
      expect(steps.flat().map((c) => c.to).sort()).to.deep.equal(changes.map((c) => c.to).sort());
      const diskOf = (c: DeviceChange) => (c.op === 'part-guid' ? c.disk : c.device);
      for (const step of steps) {
        expect(step.length).to.be.greaterThan(0);
        if (step[0]!.op === 'fs-uuid') expect(step.length).to.equal(1);
        else expect(new Set(step.map((c) => `${c.op === 'fs-uuid' ? 'fs' : 'gpt'} ${diskOf(c)}`)).size).to.equal(1);
      }
      const gpt = (c: DeviceChange) => c.op !== 'fs-uuid';
      expect(steps.filter((s) => !gpt(s[0]!)).map((s) => s[0]!.to)).to.deep.equal(changes.filter((c) => !gpt(c)).map((c) => c.to));
      for (const disk of ['/dev/sda', '/dev/sdb']) {
        const mine = steps.filter((s) => gpt(s[0]!) && diskOf(s[0]!) === disk);
        expect(mine.length).to.be.at.most(1);
        expect((mine[0] ?? []).map((c) => c.to)).to.deep.equal(changes.filter((c) => gpt(c) && diskOf(c) === disk).map((c) => c.to));
      }
    }));
  });
});

/** Byte offsets an edit may change (the table as fdisk wrote it): disk GUID and both CRCs of each header, each entry's unique GUID. */
function allowedOffsets(d: Disk, p: ReturnType<typeof parseGptHeader>, b: ReturnType<typeof parseGptHeader>, parts: number): Set<number> {
  const out = new Set<number>();
  const range = (from: number, n: number) => { for (let i = 0; i < n; i++) out.add(from + i); };
  for (const h of [p, b]) {
    if (!h.ok) throw new Error(h.reason);
    const at = Number(h.value.currentLba) * d.sectorSize;
    range(at + 16, 4); range(at + 56, 16); range(at + 88, 4);
    for (let k = 0; k < parts; k++) range(Number(h.value.entriesLba) * d.sectorSize + k * h.value.entrySize + 16, 16);
  }
  return out;
}
