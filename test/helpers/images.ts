/**
 * Test disk images built without root from a rootfs tree, cached under
 * .cache/test-images/ by a hash of their inputs (tree contents, kind, this
 * helper's recipe version), so a second test run builds nothing.
 *
 * - ext4-gpt: raw file + sfdisk (GPT) + mkfs.ext4 -d TREE -E offset=… into
 *   the partition, then qemu-img convert to qcow2. No appliance needed.
 * - lvm: GPT, one PV, VG `vgghost` with LVs root (/) and var (/var), ext4;
 *   fstab names /dev/mapper/vgghost-root and /dev/vgghost/var.
 * - xfs: GPT, xfs labelled `ghostroot`, fstab `LABEL=ghostroot`.
 *   lvm and xfs are built in one guestfish run each (tar-in of the tree).
 * - luks: GPT, partition 1 is LUKS2 (passphrase LUKS_PASSPHRASE) holding
 *   ext4; fstab `/dev/mapper/cryptroot`, crypttab `cryptroot UUID=LUKS_UUID`.
 * - luks-lvm: as the Debian installer's "encrypted LVM": LUKS2 holding a PV
 *   of VG `vgsecret` with LV root; fstab `/dev/mapper/vgsecret-root`.
 *   The LUKS header is written on the host by cryptsetup with a cheap
 *   PBKDF2 (argon2 under TCG costs seconds per open), then opened and
 *   filled by guestfish.
 *
 * Never write to a cached image: make an overlay with `overlayOf`.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { guestfsEnv } from '../../src/backends/guestfs/env.js';
import { removedAtExit } from './temp.js';

export type ImageKind = 'ext4-gpt' | 'lvm' | 'xfs' | 'luks' | 'luks-lvm';

/** Bump when a recipe changes: it is part of the cache key. */
const RECIPE_VERSION = 4;
const here = path.dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/test/helpers/). */
export const REPO_ROOT = path.resolve(here, '../../..');
/**
 * GHOSTPREP_TEST_IMAGES=DIR: another cache directory, shared by several
 * checkouts (the key is the inputs' hash, so checkouts of different trees
 * never take each other's images).
 */
export const CACHE_DIR = process.env.GHOSTPREP_TEST_IMAGES ? path.resolve(process.env.GHOSTPREP_TEST_IMAGES) : path.join(REPO_ROOT, '.cache', 'test-images');
export const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'rootfs', 'debian12');

export const EXT4_FS_UUID = '6f1c5d2a-0b7e-4c59-9a77-1d0e5e3b9a01';
export const EXT4_PART_UUID = '3e5f0c1d-8a2b-4c4d-9e6f-7a8b9c0d1e2f';
export const LVM_VG = 'vgghost';
export const XFS_LABEL = 'ghostroot';
export const LUKS_PASSPHRASE = 'ghostprep test luks passphrase 7f3c';
export const LUKS_UUID = '5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b';
export const LUKS_VG = 'vgsecret';

const FSTAB: Record<ImageKind, string> = {
  'ext4-gpt': `UUID=${EXT4_FS_UUID} / ext4 errors=remount-ro 0 1\n`,
  lvm: `/dev/mapper/${LVM_VG}-root / ext4 errors=remount-ro 0 1\n/dev/${LVM_VG}/var /var ext4 defaults 0 2\n# a network filesystem is not on the image\nnas:/export /srv/nas nfs defaults 0 0\n`,
  xfs: `LABEL=${XFS_LABEL} / xfs defaults 0 1\n`,
  luks: '/dev/mapper/cryptroot / ext4 errors=remount-ro 0 1\n',
  'luks-lvm': `/dev/mapper/${LUKS_VG}-root / ext4 errors=remount-ro 0 1\n`,
};
const CRYPTTAB: Partial<Record<ImageKind, string>> = {
  luks: `cryptroot UUID=${LUKS_UUID} none luks\n`,
  'luks-lvm': `sda1_crypt UUID=${LUKS_UUID} none luks,discard\n`,
};

/** A new directory under the system's tmp, removed when the test process exits (temp.ts). */
export async function tempDir(prefix = 'ghostprep-test-'): Promise<string> {
  return removedAtExit(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
}

/** A minimal plausible Debian tree, used when the fixture is not there. */
async function tinyTree(dir: string): Promise<void> {
  for (const d of ['etc', 'usr/bin', 'usr/sbin', 'usr/lib', 'root', 'tmp', 'var/lib/dbus']) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.symlink('usr/bin', path.join(dir, 'bin'));
  await fs.writeFile(path.join(dir, 'usr/lib/os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
  await fs.symlink('../usr/lib/os-release', path.join(dir, 'etc/os-release'));
  await fs.writeFile(path.join(dir, 'etc/hostname'), 'master\n');
  await fs.writeFile(path.join(dir, 'etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
  await fs.writeFile(path.join(dir, 'etc/debian_version'), '12.5\n');
}

/** Copy the fixture (or make a tiny tree), apply MANIFEST.tsv modes, write the image's fstab. */
export async function stageTree(kind: ImageKind, fixture = FIXTURE): Promise<string> {
  const dir = await tempDir('ghostprep-tree-');
  const root = path.join(dir, 'root');
  if (await exists(fixture)) {
    await execa('cp', ['-a', fixture, root]);
    await applyManifest(fixture, root);
  } else {
    await fs.mkdir(root);
    await tinyTree(root);
  }
  await fs.rm(path.join(root, 'etc/fstab'), { force: true });
  await fs.writeFile(path.join(root, 'etc/fstab'), FSTAB[kind]);
  const crypttab = CRYPTTAB[kind];
  if (crypttab) await fs.writeFile(path.join(root, 'etc/crypttab'), crypttab);
  return root;
}

async function applyManifest(fixture: string, root: string): Promise<void> {
  const manifest = path.join(path.dirname(fixture), 'MANIFEST.tsv');
  if (!(await exists(manifest))) return;
  const prefix = path.basename(fixture) + '/';
  for (const line of (await fs.readFile(manifest, 'utf8')).split('\n').slice(1)) {
    const [p, mode, uid, gid] = line.split('\t');
    if (!p?.startsWith(prefix) || !mode) continue;
    const target = path.join(root, p.slice(prefix.length));
    await fs.chmod(target, parseInt(mode, 8)).catch(() => undefined);
    await fs.chown(target, Number(uid), Number(gid)).catch(() => undefined); // EPERM without root: fine for tests
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** Hash of a tree: paths, types, modes, link targets and contents. */
async function treeHash(root: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(root, rel);
    const st = await fs.lstat(abs);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(await fs.readlink(abs));
    else if (st.isFile()) h.update(await fs.readFile(abs));
    else if (st.isDirectory()) for (const e of (await fs.readdir(abs)).sort()) await walk(path.join(rel, e));
    h.update('\n');
  };
  await walk('.');
  return h.digest('hex');
}

const building = new Map<string, Promise<string>>();

/** Path of a cached qcow2 test image of `kind` (built on first use). Read-only use only. */
export function testImage(kind: ImageKind, fixture = FIXTURE): Promise<string> {
  return testImages([kind], fixture).then((m) => m[kind]!);
}

type ApplianceKind = Exclude<ImageKind, 'ext4-gpt'>;

/**
 * Paths of several cached test images (each built on first use). The kinds
 * built in an appliance that are not cached yet are built in ONE appliance,
 * a drive each, instead of a launch each.
 */
export async function testImages(kinds: readonly ImageKind[], fixture = FIXTURE): Promise<Partial<Record<ImageKind, string>>> {
  const fresh = [...new Set(kinds)].filter((k) => !building.has(`${k}:${fixture}`));
  if (fresh.length) {
    const batch = buildBatch(fresh, fixture);
    for (const k of fresh) building.set(`${k}:${fixture}`, batch.then((m) => m[k]!));
  }
  const out: Partial<Record<ImageKind, string>> = {};
  for (const k of kinds) out[k] = await building.get(`${k}:${fixture}`)!;
  return out;
}

interface Staged { readonly kind: ImageKind; readonly tree: string; readonly out: string }

async function buildBatch(kinds: readonly ImageKind[], fixture: string): Promise<Partial<Record<ImageKind, string>>> {
  const staged: Staged[] = [];
  const result: Partial<Record<ImageKind, string>> = {};
  try {
    for (const kind of kinds) {
      const tree = await stageTree(kind, fixture);
      const hash = createHash('sha256').update(`${kind}\0${RECIPE_VERSION}\0${await treeHash(tree)}`).digest('hex').slice(0, 16);
      staged.push({ kind, tree, out: path.join(CACHE_DIR, `${kind}-${hash}.qcow2`) });
    }
    const missing: Staged[] = [];
    for (const s of staged) {
      if (await exists(s.out)) result[s.kind] = s.out;
      else missing.push(s);
    }
    if (!missing.length) return result;
    await fs.mkdir(CACHE_DIR, { recursive: true });
    const work = await tempDir('ghostprep-build-');
    try {
      const raws = missing.map((s) => path.join(work, `${s.kind}.raw`));
      for (const [i, s] of missing.entries()) if (s.kind === 'ext4-gpt') await buildExt4(s.tree, raws[i]!);
      const inAppliance = missing.flatMap((s, i) => (s.kind === 'ext4-gpt' ? [] : [{ kind: s.kind as ApplianceKind, tree: s.tree, raw: raws[i]! }]));
      if (inAppliance.length) await buildWithGuestfish(inAppliance, work);
      for (const [i, s] of missing.entries()) {
        const tmp = `${s.out}.tmp-${process.pid}`;
        await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raws[i]!, tmp]);
        await fs.chmod(tmp, 0o444); // a test writing to the shared base fails loudly
        await fs.rename(tmp, s.out);
        result[s.kind] = s.out;
      }
      return result;
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  } finally {
    for (const s of staged) await fs.rm(path.dirname(s.tree), { recursive: true, force: true });
  }
}

const MiB = 1024 * 1024;

async function buildExt4(tree: string, raw: string): Promise<void> {
  const size = 256 * MiB;
  await fs.writeFile(raw, '');
  await fs.truncate(raw, size);
  const start = 2048; // sectors
  await execa('sfdisk', ['-q', raw], { input: `label: gpt\nstart=${start}, type=L, uuid=${EXT4_PART_UUID}\n` });
  // sfdisk aligns the end of the partition: take its real size, not our arithmetic.
  const table = JSON.parse((await execa('sfdisk', ['-J', raw])).stdout) as { partitiontable: { partitions: { size: number }[] } };
  const sectors = table.partitiontable.partitions[0]!.size;
  await execa('mkfs.ext4', ['-F', '-q', '-U', EXT4_FS_UUID, '-L', 'root', '-E', `offset=${start * 512}`, '-d', tree, raw, `${Math.floor(sectors / 2)}k`]);
}

/** Builds each image on its own drive of one appliance (drive i is /dev/sd{a+i}). */
async function buildWithGuestfish(images: ReadonlyArray<{ kind: ApplianceKind; tree: string; raw: string }>, work: string): Promise<void> {
  const script: string[] = [];
  for (const img of images) {
    await fs.writeFile(img.raw, '');
    await fs.truncate(img.raw, 512 * MiB);
    if (img.kind === 'luks' || img.kind === 'luks-lvm') await luksPartition(img.raw, work);
    script.push(`add-drive ${img.raw} format:raw`);
  }
  script.push('run');
  for (const [i, img] of images.entries()) {
    const dev = `/dev/sd${String.fromCharCode(97 + i)}`;
    const tarball = path.join(work, `${img.kind}.tar`);
    await execa('tar', ['--numeric-owner', '-C', img.tree, '-cf', tarball, '.']);
    const lvm = [
      `part-disk ${dev} gpt`, `pvcreate ${dev}1`, `vgcreate ${LVM_VG} ${dev}1`,
      `lvcreate root ${LVM_VG} 200`, `lvcreate-free var ${LVM_VG} 100`,
      `mkfs ext4 /dev/${LVM_VG}/root`, `mkfs ext4 /dev/${LVM_VG}/var`,
      `mount /dev/${LVM_VG}/root /`, 'mkdir-p /var', `mount /dev/${LVM_VG}/var /var`,
    ];
    const xfs = [`part-disk ${dev} gpt`, `mkfs xfs ${dev}1 label:${XFS_LABEL}`, `mount ${dev}1 /`];
    const mapper = `cr${i}`;
    const open = [`cryptsetup-open ${dev}1 ${mapper}`, LUKS_PASSPHRASE];
    const luks = [...open, `mkfs ext4 /dev/mapper/${mapper}`, `mount /dev/mapper/${mapper} /`];
    const luksLvm = [
      ...open, `pvcreate /dev/mapper/${mapper}`, `vgcreate ${LUKS_VG} /dev/mapper/${mapper}`, `lvcreate-free root ${LUKS_VG} 100`,
      `mkfs ext4 /dev/${LUKS_VG}/root`, `mount /dev/${LUKS_VG}/root /`,
    ];
    script.push(...{ lvm, xfs, luks, 'luks-lvm': luksLvm }[img.kind], `tar-in ${tarball} /`, 'umount-all');
  }
  script.push('exit');
  await execa('guestfish', ['--keys-from-stdin'], { input: script.join('\n') + '\n', env: guestfsEnv(), extendEnv: false });
}

/** GPT with one partition at 1 MiB whose first 16 MiB are a LUKS2 header made by the host's cryptsetup. */
async function luksPartition(raw: string, work: string): Promise<void> {
  await execa('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, type=L\n' });
  const header = path.join(work, 'luks.img');
  const keyFile = path.join(work, 'luks.key');
  await fs.writeFile(header, '');
  await fs.truncate(header, 32 * MiB);
  await fs.writeFile(keyFile, LUKS_PASSPHRASE, { mode: 0o600 });
  await execa('cryptsetup', ['luksFormat', '--batch-mode', '--type', 'luks2', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000',
    '--uuid', LUKS_UUID, '--key-file', keyFile, header]);
  await execa('dd', [`if=${header}`, `of=${raw}`, 'bs=1M', 'count=16', 'seek=1', 'conv=notrunc', 'status=none']);
}

/** A qcow2 overlay of `base` at dir/name.qcow2 (base used read-only). */
export async function overlayOf(base: string, dir: string, name: string): Promise<string> {
  const out = path.join(dir, `${name}.qcow2`);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.resolve(base), out]);
  return out;
}
