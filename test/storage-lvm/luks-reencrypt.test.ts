/**
 * storage.luks.reencrypt: a volume key of each clone's own, by `cryptsetup
 * reencrypt` run in the appliance (luks-identity.ts), on 2 clones of one
 * small LUKS2 master (luks2-small.ts: 16 MiB of header, 8 MiB of data, built
 * on the host without an appliance) and a LUKS1 volume in ONE appliance:
 * - before: the host-side audit finds the clones sharing the master's
 *   volume key (and LUKS UUID);
 * - the first clone takes the whole path (the clone's passphrase added by
 *   luks-add-key, then `cryptsetup reencrypt`); the second is left as an
 *   interrupted re-encryption leaves it (its key added, `cryptsetup reencrypt
 *   --init-only`, by the host's cryptsetup before the appliance starts): the
 *   pass finishes it. Two clones are the two paths a clone can take; a
 *   third would take one of them again. That each clone's volume key is its
 *   own is checked pairwise (neither opens with the other's passphrase) and
 *   against the master (the audit after the pass includes an untouched clone
 *   of it);
 * - after: each clone opens with its own passphrase in the appliance and its
 *   files are intact; its header passes the host's `cryptsetup luksDump`, and
 *   the host's cryptsetup finds that the master's passphrase and the other
 *   clone's open none of its key slots (`--test-passphrase` on the header:
 *   the same key slots, each argon2 run native instead of seconds under
 *   TCG); the audit finds no volume key or UUID shared by the clones and
 *   the master;
 * - a second pass leaves a re-encrypted clone alone: checked on the resumed
 *   clone, whose key slot has the host's cheap PBKDF (the check is the same
 *   on either clone; each open of the other's argon2 slot, cryptsetup's
 *   default, costs seconds under TCG); a LUKS1 volume is refused before
 *   anything is written;
 * - what a plan says (plannedReencrypt) before, during and after; and
 *   through the backend in plan mode, as a warning of the storage-references
 *   step. That check needs a second appliance: GuestfsBackend.forEachGuest
 *   always opens its own session (read-only drives, its own inspection
 *   through the LUKS key files), and what it checks is that very path; the
 *   first appliance cannot be handed to it. It re-encrypts nothing, so it
 *   costs one launch and no more;
 * - no passphrase appears in any guestfish command line or error.
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { luksDevicesOf, parseLuksHeader, plannedReencrypt, reencryptEstimate, renewLuksIdentity } from '../../src/backends/guestfs/luks-identity.js';
import { readImageBytes } from '../../src/backends/guestfs/lvm-probe.js';
import { GuestfsError, GuestfsSession } from '../../src/backends/guestfs/session.js';
import { probeDiskIdentity } from '../../src/audit/headers.js';
import { findDuplicates } from '../../src/audit/duplicates.js';
import { tempDir } from '../helpers/images.js';
import { GuestfsBackend, type GuestfsImageGuest } from '../../src/backends/guestfs/backend.js';
import { storageReferencesOperation } from '../../src/operations/customize/storage-references.js';
import type { OperationContext } from '../../src/core/operation.js';
import { cloneOf, MASTER_LUKS_KEY, MASTER_LUKS_UUID } from './images.js';
import { SMALL_LUKS_PARTITION_BYTES, smallLuks2Master } from './luks2-small.js';

process.env.LIBGUESTFS_BACKEND ??= 'direct';
process.env.LIBGUESTFS_BACKEND_SETTINGS ??= 'force_tcg';

const MiB = 1024 * 1024;
const LUKS1_KEY = 'luks1 volume passphrase 7c0e';

/** The duplicates of `kind` among `images` (qcow2), as `ghostprep audit` reads them host-side. */
async function shared(images: readonly string[], kind: string): Promise<string[][]> {
  const found = await Promise.all(images.map(async (target) => ({ target, identity: { hostname: null, machineId: null, dbusMachineId: null, sshHostKeys: [], disk: await probeDiskIdentity(target, 'qcow2') } })));
  return findDuplicates(found).filter((d) => d.kind === kind).map((d) => d.targets);
}

describe('LUKS volume key per clone: storage.luks.reencrypt (appliance)', function () {
  this.timeout(60 * 60_000);
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-reencrypt-test-'); });
  after(async () => { if (dir) await fs.rm(dir, { recursive: true, force: true }); });

  it('plan words: size and time under TCG', () => {
    expect(reencryptEstimate(111 * MiB)).to.match(/^0\.11 GiB, about \d+ s under TCG$/);
    expect(reencryptEstimate(20 * 1024 * MiB)).to.match(/^20\.00 GiB, about \d+ min under TCG$/);
  });

  it('2 clones and a LUKS1 volume in one appliance: own volume keys, own passphrases only, data intact, resumed after an interruption', async () => {
    const master = await smallLuks2Master();
    // the plan's words for a re-encryption of the whole partition (what blockdev-getsize64 reports)
    const toReencrypt = `storage.luks.reencrypt: /dev/sda1 will be re-encrypted with a volume key of its own (${reencryptEstimate(SMALL_LUKS_PARTITION_BYTES)})`;
    const names = ['r1', 'r2'];
    const keys = names.map((n) => `reencrypt key of ${n} 5e1f`);
    const clones = await Promise.all(names.map((n) => cloneOf(master, dir, `reenc-${n}`)));
    // a whole-disk LUKS1 volume (host cryptsetup, cheap PBKDF)
    const luks1 = path.join(dir, 'luks1.raw');
    await fs.writeFile(luks1, '');
    await fs.truncate(luks1, 16 * MiB);
    await fs.writeFile(path.join(dir, 'k1'), LUKS1_KEY, { mode: 0o600 });
    await execa('cryptsetup', ['luksFormat', '--batch-mode', '--type', 'luks1', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', path.join(dir, 'k1'), luks1]);
    const luks1Uuid = (await execa('cryptsetup', ['luksUUID', luks1])).stdout;

    // before: the master's volume key and UUID on every clone
    expect(await shared(clones, 'luks-volume-key')).to.deep.equal([clones]);
    expect(await shared(clones, 'luks-uuid')).to.deep.equal([clones]);

    // the second clone as an interrupted run leaves it: its key added, the re-encryption started, not
    // done. Made by the host's cryptsetup on a copy of the clone's partition (with the cheap PBKDF of
    // the master's slot: under TCG each argon2 slot costs seconds at every open), whose header is
    // written back into the clone with qemu-io; the volume's data is untouched by --init-only.
    {
      const vol = path.join(dir, 'vol2.img');
      await fs.writeFile(vol, await readImageBytes(clones[1]!, 'qcow2', MiB, SMALL_LUKS_PARTITION_BYTES));
      const masterKeyFile = path.join(dir, 'mk2');
      const keyFile = path.join(dir, 'k2');
      await fs.writeFile(masterKeyFile, MASTER_LUKS_KEY, { mode: 0o600 });
      await fs.writeFile(keyFile, keys[1]!, { mode: 0o600 });
      const cheap = ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'];
      try {
        await execa('cryptsetup', ['luksAddKey', '--batch-mode', ...cheap, '--key-slot', '1', '--key-file', masterKeyFile, vol, keyFile]);
        await execa('cryptsetup', ['reencrypt', '--init-only', '--batch-mode', ...cheap, '--key-slot', '1', '--key-file', keyFile, vol]);
      } finally {
        await fs.rm(masterKeyFile);
        await fs.rm(keyFile);
      }
      const hdr = path.join(dir, 'hdr2.img');
      await fs.writeFile(hdr, (await fs.readFile(vol)).subarray(0, 16 * MiB));
      await execa('qemu-io', ['-f', 'qcow2', '-c', `write -s ${hdr} ${MiB} ${16 * MiB}`, clones[1]!]);
      await fs.rm(vol);
    }

    const lines: string[] = [];
    const errors: string[] = [];
    const session = await GuestfsSession.open({ drives: [...clones.map((p) => ({ path: p, format: 'qcow2', readonly: false })), { path: luks1, format: 'raw', readonly: false }], trace: (line, ms) => {
      lines.push(line);
      // the cost, for the docs (never asserted)
      if (/cryptsetup reencrypt/.test(line)) console.log(`      cryptsetup reencrypt ${/--init-only/.test(line) ? '--init-only' : ''}: ${(ms / 1000).toFixed(1)} s`);
    } });
    /** Whether `key` opens `dev` (read-only); kept open as /dev/mapper/`keepAs` when given, else closed. */
    const opens = async (dev: string, key: string, keepAs?: string): Promise<boolean> => {
      try {
        await session.commandWithKey('cryptsetup-open', [dev, keepAs ?? 'probe', { opt: 'readonly', value: true }], key);
      } catch (err) {
        if (err instanceof GuestfsError && session.alive) return false;
        throw err;
      }
      if (!keepAs) await session.command('cryptsetup-close', ['/dev/mapper/probe']);
      return true;
    };
    const header = async (dev: string) => parseLuksHeader(Buffer.concat([await session.command('pread-device', [dev, 1024 * 1024, 0]), await session.command('pread-device', [dev, 1024 * 1024, 1024 * 1024]), await session.command('pread-device', [dev, 1024 * 1024, 2 * 1024 * 1024]), await session.command('pread-device', [dev, 1024 * 1024, 3 * 1024 * 1024])]))!;
    const uuids: string[] = [];
    const spec = (i: number) => ({ newUuid: true, newKey: keys[i]!, removeMasterKeys: true, reencrypt: true });
    try {
      // what a plan says: the size and time of each re-encryption, or why apply will refuse it
      expect(await plannedReencrypt(session, '/dev/sda1', spec(0), clones[0]!)).to.equal(toReencrypt);
      expect(await plannedReencrypt(session, '/dev/sdc', { ...spec(0), newKey: 'luks1 clone key' }, luks1)).to.equal('storage.luks.reencrypt: /dev/sdc is LUKS1: apply will refuse it (convert the master to LUKS2 first)');
      expect(await plannedReencrypt(session, '/dev/sda1', { ...spec(0), reencrypt: false }, clones[0]!)).to.equal(undefined);

      expect((await header('/dev/sdb1')).reencrypting, 'marked as being re-encrypted').to.equal(true);
      expect(await plannedReencrypt(session, '/dev/sdb1', spec(1), clones[1]!)).to.equal(`storage.luks.reencrypt: /dev/sdb1 has an unfinished re-encryption, which apply finishes (${reencryptEstimate(SMALL_LUKS_PARTITION_BYTES)})`);

      for (const [i, letter] of ['a', 'b'].entries()) {
        const devs = await luksDevicesOf(session, `/dev/sd${letter}`, [`/dev/sd${letter}1`]);
        expect(devs).to.deep.equal([`/dev/sd${letter}1`]);
        const c = await renewLuksIdentity(session, devs[0]!, spec(i), [MASTER_LUKS_KEY], clones[i]!);
        expect(c.uuidFrom).to.equal(MASTER_LUKS_UUID);
        expect(c.reencryptedBytes, 'the whole partition').to.equal(SMALL_LUKS_PARTITION_BYTES);
        // the master's slot is gone; the clone's passphrase wraps the new volume key in a slot cryptsetup chose
        if (i === 0) expect(c.removedSlots).to.deep.equal([0]);
        expect(c.removedSlots).not.to.include(c.keySlot);
        uuids.push(c.uuidTo);
        const h = await header(devs[0]!);
        expect(h.reencrypting).to.equal(false);
        expect(h.activeSlots).to.deep.equal([c.keySlot]);
      }
      expect(new Set([...uuids, MASTER_LUKS_UUID]).size).to.equal(3);

      // a second pass: the clone's own key opens it, nothing else does, nothing is pending: left alone
      const again = await renewLuksIdentity(session, '/dev/sdb1', spec(1), [MASTER_LUKS_KEY], clones[1]!);
      expect(again).to.deep.equal({ device: '/dev/sdb1', uuidFrom: uuids[1], uuidTo: uuids[1], removedSlots: [] });
      expect(await plannedReencrypt(session, '/dev/sdb1', spec(1), clones[1]!)).to.equal(undefined);

      // LUKS1: refused before anything is written
      const refused = await renewLuksIdentity(session, '/dev/sdc', { newUuid: true, newKey: 'luks1 clone key', removeMasterKeys: true, reencrypt: true }, [LUKS1_KEY], luks1).then(() => undefined, (e: Error) => e);
      expect(refused?.message).to.match(/\/dev\/sdc: storage\.luks\.reencrypt: this volume is LUKS1, .*convert the master to LUKS2 first/);
      errors.push(refused!.message);
      expect(await session.text('luks-uuid', ['/dev/sdc'])).to.equal(luks1Uuid);
      expect(await opens('/dev/sdc', LUKS1_KEY)).to.equal(true);
      expect(await opens('/dev/sdc', 'luks1 clone key')).to.equal(false);

      for (const [i, letter] of ['a', 'b'].entries()) {
        const dev = `/dev/sd${letter}1`;
        expect(await session.text('luks-uuid', [dev])).to.equal(uuids[i]);
        // its own key opens it (one KDF run: kept open to read the data through it)
        expect(await opens(dev, keys[i]!, 'data'), `${dev} with its own key`).to.equal(true);
        // the data came through: the master's files, read through the new volume key
        await session.command('mount-ro', ['/dev/mapper/data', '/']);
        expect(await session.text('cat', ['/etc/hostname'])).to.equal('master\n');
        expect(await session.text('cat', ['/etc/crypttab'])).to.equal(`crmaster UUID=${MASTER_LUKS_UUID} none luks\n`);
        await session.command('umount-all');
        await session.command('cryptsetup-close', ['/dev/mapper/data']);
      }
    } finally {
      await session.close();
    }

    // the host's cryptsetup accepts every header (LUKS2 checksums), sees one key slot and no pending
    // re-encryption, and only the clone's own passphrase opens it: not the master's, not the other clone's
    /** Whether `key` opens a key slot of the header `hdr` (host cryptsetup, nothing activated). */
    const hostOpens = async (hdr: string, key: string): Promise<boolean> => {
      const keyFile = path.join(dir, 'test.key');
      await fs.writeFile(keyFile, key, { mode: 0o600 });
      try {
        const r = await execa('cryptsetup', ['open', '--test-passphrase', '--key-file', keyFile, hdr], { reject: false });
        if (r.exitCode !== 0 && r.exitCode !== 2) throw new Error(`cryptsetup open --test-passphrase ${hdr}: exit ${r.exitCode}: ${r.stderr}`);
        return r.exitCode === 0;
      } finally {
        await fs.rm(keyFile);
      }
    };
    for (const [i, c] of clones.entries()) {
      const hdr = path.join(dir, `hdr-${i}.img`);
      await fs.writeFile(hdr, await readImageBytes(c, 'qcow2', MiB, 16 * MiB));
      const dump = (await execa('cryptsetup', ['luksDump', hdr])).stdout;
      expect(dump).to.include(`UUID:          \t${uuids[i]}`);
      expect(dump).not.to.include(MASTER_LUKS_UUID);
      expect(dump).not.to.match(/reencrypt/i);
      expect(dump.match(/^\s+\d+: luks2$/gm)).to.have.length(1);
      expect(await hostOpens(hdr, MASTER_LUKS_KEY), `${c} with the master's key`).to.equal(false);
      expect(await hostOpens(hdr, keys[1 - i]!), `${c} with the other clone's key`).to.equal(false);
      expect(await hostOpens(hdr, keys[i]!), `${c} with its own key`).to.equal(true);
    }
    // after: no volume key and no LUKS UUID shared by the clones, nor by a clone and the master (an untouched clone of it)
    const fresh = await cloneOf(master, dir, 'reenc-plan');
    expect(await shared([fresh, ...clones], 'luks-volume-key')).to.deep.equal([]);
    expect(await shared([fresh, ...clones], 'luks-uuid')).to.deep.equal([]);

    // plan through the backend, read-only: the untouched clone is to be re-encrypted (size, time), nothing written
    await fs.writeFile(path.join(dir, 'master.key'), MASTER_LUKS_KEY + '\n', { mode: 0o600 });
    const warnings: string[] = [];
    let visited = 0;
    await new GuestfsBackend({ trace: (line) => lines.push(line) }).forEachGuest([{ kind: 'image', path: fresh, format: 'qcow2', machine: 'p1' }], {
      readonly: true, jobs: 1, luksKeyFiles: [path.join(dir, 'master.key')],
      deviceIdentity: () => ({ luks: { newUuid: true, newKey: 'plan clone key', removeMasterKeys: true, reencrypt: true } }),
    }, async (_t, guest) => {
      if (guest instanceof Error) throw guest;
      visited++;
      expect((guest as GuestfsImageGuest).os.root).to.match(/^\/dev\/mapper\//);
      await storageReferencesOperation.plan({ guest, profile: {}, warn: (m: string) => warnings.push(m) } as unknown as OperationContext);
    });
    expect(visited).to.equal(1);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.equal(toReencrypt);
    expect((await probeDiskIdentity(fresh, 'qcow2')).volumes.find((v) => v.kind === 'luks2')!.uuid).to.equal(MASTER_LUKS_UUID);

    // no passphrase in any command line guestfish was given, nor in an error
    const secrets = [MASTER_LUKS_KEY, LUKS1_KEY, 'luks1 clone key', 'plan clone key', ...keys];
    expect(lines.length).to.be.greaterThan(20);
    for (const text of [...lines, ...errors]) for (const s of secrets) expect(text).not.to.contain(s);
  });
});

