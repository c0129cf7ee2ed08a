/**
 * LVM and LUKS identity per clone, in real appliances (TCG):
 * - LVM: 3 clones of one LVM master through the guestfs backend with
 *   storage.lvm {newUuids, vgName}: ONE appliance for all three (their
 *   identities become unique before inspection), each guest opened, PV and
 *   VG UUIDs distinct and new, VG names per clone (read back on the host
 *   from the images' LVM metadata, not through ghostprep's appliance).
 * - LUKS: 2 clones of one LUKS2 master in ONE appliance: each gets a new
 *   UUID and its own passphrase, the master's slot is removed; each opens
 *   with its own key only (not the master's, not the other clone's); the
 *   headers pass the host's `cryptsetup luksDump` (which checks the LUKS2
 *   checksums). Two clones are the fewest that can share an identity or a
 *   key; each clone's new passphrase and each key tried on it is an argon2
 *   derivation of seconds under TCG, so a third clone would repeat them.
 * - A fleet: 5 clones of the LVM master deployed through the CLI (`apply
 *   --jobs 1`) with storage.lvm and storage.newUuids, then `ghostprep audit`
 *   over them: every identity unique (exit 0), PV/VG UUIDs, VG names, file
 *   system UUIDs and GPT GUIDs seen for each clone; the apply and the audit
 *   each open all 5 in ONE appliance (the identities batch once renewed).
 *   Five clones, all with the master's VG name and PV/VG UUIDs when the
 *   appliance starts, are already a batch whose duplicates LVM would refuse
 *   to activate side by side: every rule (one appliance, each identity
 *   renewed and distinct, the audit finding nothing shared) holds or fails
 *   for five as for any count; the throughput of large batches is the
 *   benchmark's (bench/).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { TargetSpec } from '../../src/core/backend.js';
import { GuestfsBackend, type GuestfsImageGuest } from '../../src/backends/guestfs/backend.js';
import { probeLvm, readImageBytes } from '../../src/backends/guestfs/lvm-probe.js';
import { luksDevicesOf, renewLuksIdentity } from '../../src/backends/guestfs/luks-identity.js';
import { GuestfsError, GuestfsSession } from '../../src/backends/guestfs/session.js';
import { tempDir } from '../helpers/images.js';
import { identityValues, type ComparableIdentity } from '../../src/audit/duplicates.js';
import { storageReferencesOperation } from '../../src/operations/customize/storage-references.js';
import type { OperationContext } from '../../src/core/operation.js';
import { cloneOf, FSTAB, GRUB, identityMasters, MASTER_LUKS_KEY, MASTER_LUKS_UUID, MASTER_VG } from './images.js';

process.env.LIBGUESTFS_BACKEND ??= 'direct';
process.env.LIBGUESTFS_BACKEND_SETTINGS ??= 'force_tcg';

/** The CLI fleet's clones: one appliance's batch, all alike when it starts (see the header). */
const FLEET = 5;
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const LAUNCH_HOOK = fileURLToPath(new URL('../helpers/launch-log.js', import.meta.url));

/**
 * A ghostprep run with its appliance launches counted by the suite's own
 * launch counter (test/helpers/launch-log.ts: each guestfish `run`), into a
 * file of its own; the records are then added to the suite's launch log when
 * there is one, so its table still counts them.
 */
function ghostprepCounted(args: string[], logFile: string): { status: number; stdout: string; stderr: string; appliances: number } {
  const env = {
    ...process.env, LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg', GHOSTPREP_LAUNCH_LOG: logFile,
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${LAUNCH_HOOK}`].filter(Boolean).join(' '),
  };
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  let lines: string[] = [];
  try { lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean); } catch { /* nothing launched */ }
  if (process.env.GHOSTPREP_LAUNCH_LOG && lines.length) appendFileSync(process.env.GHOSTPREP_LAUNCH_LOG, lines.join('\n') + '\n');
  const appliances = lines.filter((l) => (JSON.parse(l) as { kind: string }).kind === 'appliance').length;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, appliances };
}

describe('LVM and LUKS identity per clone (appliance)', function () {
  this.timeout(30 * 60_000);
  let masters: { lvm: string; luks: string };
  let dir: string;
  before(async () => {
    masters = await identityMasters();
    dir = await tempDir('ghostprep-lvmluks-test-');
  });
  after(async () => { if (dir) await fs.rm(dir, { recursive: true, force: true }); });

  it('3 LVM clones: one appliance, new PV/VG UUIDs, a VG name each, every guest opened', async () => {
    const master = await probeLvm(masters.lvm, 'raw');
    expect(master.vgNames).to.deep.equal([MASTER_VG]);
    const names = ['node1', 'node2', 'node3'];
    const targets: TargetSpec[] = [];
    for (const n of names) targets.push({ kind: 'image', path: await cloneOf(masters.lvm, dir, n), format: 'qcow2', machine: n });
    const log: string[] = [];
    const backend = new GuestfsBackend({ verbose: (m) => log.push(m), drivesPerAppliance: 20 });
    const seen = new Map<string, { renames: [string, string][]; root: string; mounts: unknown[]; fstab: string; grub: string }>();
    await backend.forEachGuest(targets, {
      readonly: false, jobs: 1,
      deviceIdentity: (t) => ({ lvm: { newUuids: true, vgName: `vg-${t.machine}` } }),
    }, async (t, guest) => {
      if (guest instanceof Error) throw guest;
      const g = guest as GuestfsImageGuest;
      // the storage-references operation, planned against the real renamed guest
      const planned = await storageReferencesOperation.plan({ guest: g, profile: {} } as unknown as OperationContext);
      const text = (p: string): string => (planned.find((c) => c.path === p) as { content: Buffer } | undefined)?.content.toString() ?? '';
      seen.set(t.machine!, { renames: [...(g.deviceRenames?.vgs ?? [])], root: g.os.root, mounts: [...g.os.mounts], fstab: text('/etc/fstab'), grub: text('/etc/default/grub') });
    });
    expect(log.find((l) => /image\(s\) in/.test(l))).to.match(/3 image\(s\) in 1 appliance\(s\)/);
    const after = await Promise.all(targets.map((t) => probeLvm(t.path, 'qcow2')));
    for (const [i, n] of names.entries()) {
      expect(seen.get(n)!.renames).to.deep.equal([[MASTER_VG, `vg-${n}`]]);
      expect(seen.get(n)!.root).to.equal(`/dev/vg-${n}/root`);
      // /var, which the fstab still names by the old VG when the guest is opened, is mounted from the renamed VG
      expect(seen.get(n)!.mounts).to.deep.equal([{ mountpoint: '/', device: `/dev/vg-${n}/root` }, { mountpoint: '/var', device: `/dev/vg-${n}/var` }]);
      expect(seen.get(n)!.fstab).to.equal(FSTAB.replace('vg--master', `vg--${n}`).replace('/dev/vg-master/', `/dev/vg-${n}/`));
      expect(seen.get(n)!.grub).to.equal(GRUB.replaceAll('vg--master', `vg--${n}`).replaceAll('vg-master', `vg-${n}`));
      expect(after[i]!.vgNames).to.deep.equal([`vg-${n}`]);
    }
    const pv = after.map((a) => a.pvUuids[0]);
    const vg = after.map((a) => a.vgUuids[0]);
    expect(new Set([...pv, master.pvUuids[0]]).size).to.equal(4);
    expect(new Set([...vg, master.vgUuids[0]]).size).to.equal(4);

    // a second apply: the VG already has its name, nothing is renewed, one appliance again
    log.length = 0;
    await backend.forEachGuest(targets, { readonly: false, jobs: 1, deviceIdentity: (t) => ({ lvm: { newUuids: true, vgName: `vg-${t.machine}` } }) }, async (_t, guest) => {
      if (guest instanceof Error) throw guest;
      expect((guest as GuestfsImageGuest).deviceRenames).to.equal(undefined);
    });
    expect(log.find((l) => /image\(s\) in/.test(l))).to.match(/3 image\(s\) in 1 appliance\(s\)/);
    expect((await Promise.all(targets.map((t) => probeLvm(t.path, 'qcow2')))).map((a) => a.pvUuids[0])).to.deep.equal(pv);
  });

  it(`${FLEET} LVM clones through the CLI (apply --jobs 1, storage.lvm + storage.newUuids): one appliance; audit finds no shared identity`, async () => {
    const fleet = path.join(dir, 'fleet');
    await fs.mkdir(fleet);
    const names = Array.from({ length: FLEET }, (_, i) => `lvm${String(i + 1).padStart(2, '0')}`);
    for (const n of names) await cloneOf(masters.lvm, fleet, n);
    await fs.writeFile(path.join(dir, 'fleet.yaml'), 'profile: fleet\nstorage:\n  newUuids: true\n  lvm: {newUuids: true, vgName: "vg-{{machine.name}}"}\n');
    await fs.writeFile(path.join(dir, 'fleet-inv.yaml'), `defaults: {profile: fleet}\nmachines:\n${names.map((n) => `  - {name: ${n}}`).join('\n')}\n`);
    const applied = ghostprepCounted(['apply', '-v', '-p', path.join(dir, 'fleet.yaml'), '-i', path.join(dir, 'fleet-inv.yaml'), '--state', path.join(dir, 'fleet-state'),
      '--target', path.join(fleet, '{name}.qcow2'), '--jobs', '1', '--report', path.join(dir, 'fleet-report.json')], path.join(dir, 'apply-launches.jsonl'));
    expect(applied.status, applied.stderr + applied.stdout).to.equal(0);
    // the file systems on the LVs (root, var): a new UUID each, all distinct
    const report = JSON.parse(await fs.readFile(path.join(dir, 'fleet-report.json'), 'utf8')) as { machines: Array<{ name: string; status: string; deviceChanges?: Array<{ op: string; from: string; to: string }> }> };
    const fsUuids = report.machines.flatMap((m) => {
      expect(m.status, m.name).to.equal('ok');
      const changes = (m.deviceChanges ?? []).filter((c) => c.op === 'fs-uuid');
      expect(changes, `${m.name}: ${JSON.stringify(m.deviceChanges)}`).to.have.length(2);
      return changes.map((c) => c.to);
    });
    expect(new Set(fsUuids).size).to.equal(2 * FLEET);
    expect(applied.appliances, 'appliances the apply launched').to.equal(1);

    const audit = ghostprepCounted(['audit', '-v', '--target', path.join(fleet, '*.qcow2'), '--json', '--jobs', '1'], path.join(dir, 'audit-launches.jsonl'));
    const a = JSON.parse(audit.stdout) as { targets: number; unique: boolean; errors: unknown[]; duplicates: unknown[]; identities: Array<{ target: string; identity: ComparableIdentity }> };
    expect(a.errors).to.deep.equal([]);
    expect(a.duplicates).to.deep.equal([]);
    expect(a.unique).to.equal(true);
    expect(a.targets).to.equal(FLEET);
    expect(audit.status, audit.stderr).to.equal(0);
    // not unique by absence: each clone shows its own LVM and disk identity (and none of the master's)
    const master = await probeLvm(masters.lvm, 'raw');
    const kinds = new Map<string, number>();
    for (const { target, identity } of a.identities) {
      const values = identityValues(identity);
      const count = (k: string): number => values.filter(([kind]) => kind === k).length;
      const n = path.basename(target, '.qcow2');
      expect(values, target).to.deep.include(['lvm-vg-name', `vg-${n}`]);
      expect(values.map(([, v]) => v), target).to.not.include.members([MASTER_VG, master.pvUuids[0], master.vgUuids[0]]);
      for (const k of ['lvm-pv-uuid', 'lvm-vg-uuid', 'lvm-vg-name', 'machine-id', 'hostname', 'gpt-disk-guid', 'gpt-partition-guid']) kinds.set(k, (kinds.get(k) ?? 0) + (count(k) ? 1 : 0));
      // the two ext4 file systems on the LVs (root, var), read through the LVM metadata, with the UUIDs the apply gave
      expect(values.filter(([kind]) => kind === 'filesystem-uuid').map(([, v]) => v).sort(), target)
        .to.deep.equal(report.machines.find((m) => m.name === n)!.deviceChanges!.filter((c) => c.op === 'fs-uuid').map((c) => `ext ${c.to}`).sort());
    }
    for (const [k, c] of kinds) expect(c, `clones with a ${k}`).to.equal(FLEET);
    // the guest files (machine-id, hostname, SSH keys) of roots on LVM are read in an appliance: all of them in one
    expect(audit.appliances, 'appliances the audit launched').to.equal(1);
  });

  it('2 LUKS clones in one appliance: new UUIDs, own passphrases, master slot removed', async () => {
    const names = ['c1', 'c2'];
    const keys = names.map((n) => `clone key of ${n} 93ab`);
    const clones = await Promise.all(names.map((n) => cloneOf(masters.luks, dir, `luks-${n}`)));
    const session = await GuestfsSession.open({ drives: clones.map((p) => ({ path: p, format: 'qcow2', readonly: false })) });
    const opens = async (dev: string, key: string): Promise<boolean> => {
      try {
        await session.commandWithKey('cryptsetup-open', [dev, 'probe', { opt: 'readonly', value: true }], key);
      } catch (err) {
        if (err instanceof GuestfsError && session.alive) return false;
        throw err;
      }
      await session.command('cryptsetup-close', ['/dev/mapper/probe']);
      return true;
    };
    try {
      const uuids: string[] = [];
      for (const [i, letter] of ['a', 'b'].entries()) {
        const devs = await luksDevicesOf(session, `/dev/sd${letter}`, [`/dev/sd${letter}1`]);
        expect(devs).to.deep.equal([`/dev/sd${letter}1`]);
        const c = await renewLuksIdentity(session, devs[0]!, { newUuid: true, newKey: keys[i]!, removeMasterKeys: true }, [MASTER_LUKS_KEY], clones[i]!);
        expect(c.uuidFrom).to.equal(MASTER_LUKS_UUID);
        expect(c.removedSlots).to.deep.equal([0]);
        expect(c.keySlot).to.equal(1);
        uuids.push(c.uuidTo);
        // again (first clone; each run of the clone's argon2 KDF costs seconds under TCG): its own key opens it already, nothing changes
        if (i === 0) {
          const again = await renewLuksIdentity(session, devs[0]!, { newUuid: true, newKey: keys[i]!, removeMasterKeys: true }, [MASTER_LUKS_KEY], clones[i]!);
          expect(again.uuidTo).to.equal(c.uuidTo);
        }
      }
      expect(new Set([...uuids, MASTER_LUKS_UUID]).size).to.equal(3);
      for (const [i, letter] of ['a', 'b'].entries()) {
        const dev = `/dev/sd${letter}1`;
        expect(await session.text('luks-uuid', [dev])).to.equal(uuids[i]);
        expect(await opens(dev, keys[i]!), `${dev} with its own key`).to.equal(true);
        expect(await opens(dev, MASTER_LUKS_KEY), `${dev} with the master's key`).to.equal(false);
        if (i === 0) expect(await opens(dev, keys[1]!), `${dev} with another clone's key`).to.equal(false);
      }
    } finally {
      await session.close();
    }
    // the host's cryptsetup accepts each header (LUKS2 checksums of both copies) and reads the new UUID
    for (const [i, c] of clones.entries()) {
      const hdr = path.join(dir, `hdr-${i}.img`);
      await fs.writeFile(hdr, await readImageBytes(c, 'qcow2', 1024 * 1024, 16 * 1024 * 1024));
      const dump = await execa('cryptsetup', ['luksDump', hdr]);
      expect(dump.stdout).to.include(`UUID:          \t${(await probeLvm(c, 'qcow2')).luksUuids[0]}`);
      expect(dump.stdout).not.to.include(MASTER_LUKS_UUID);
    }
  });
});
