/**
 * A small LUKS2 master for the re-encryption test, built on the host with
 * no appliance at all and cached by the content of this file in .cache/:
 * GPT, partition 1 at 1 MiB of 24 MiB = a LUKS2 header of 16 MiB (made by
 * the host's cryptsetup: cheap PBKDF, the UUID and passphrase of the other
 * LUKS master, a volume key given to it) + 8 MiB of data: an ext4 made by
 * `mkfs.ext4 -d` holding the master's /etc, encrypted here with that volume
 * key exactly as dm-crypt does (aes-xts-plain64, 512-byte sectors, the IV
 * the sector number). Every MiB `cryptsetup reencrypt` goes through costs
 * TCG time; what is left with 8 MiB is mostly the KDF of each key slot.
 *
 * Its clones (qcow2 overlays) share its volume key and LUKS UUID, as clones
 * of a real master do.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, tempDir } from '../helpers/images.js';
import { MASTER_LUKS_KEY, MASTER_LUKS_UUID } from './images.js';

const MiB = 1024 * 1024;
const SECTOR = 512;
/** Where partition 1 starts on the disk. */
const PART_START = MiB;
/** Partition 1: the LUKS2 volume (header + data), as the appliance's blockdev-getsize64 reports it. */
export const SMALL_LUKS_PARTITION_BYTES = 24 * MiB;
/** LUKS2's default data offset: the header (two copies of the JSON area and the key slots). */
const DATA_OFFSET = 16 * MiB;
const DISK_BYTES = PART_START + SMALL_LUKS_PARTITION_BYTES + MiB; // room for the backup GPT

const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';
const GRUB = 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="quiet"\n';

/** The master's files: what a clone must still hold after its re-encryption. */
const FILES: Record<string, string> = {
  'etc/os-release': OS_RELEASE,
  'etc/hostname': 'master\n',
  'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
  'etc/fstab': '/dev/mapper/crmaster / ext4 defaults 0 1\n',
  'etc/crypttab': `crmaster UUID=${MASTER_LUKS_UUID} none luks\n`,
  'etc/default/grub': GRUB,
};

/** aes-xts-plain64 of `data` (whole 512-byte sectors), sector numbers from 0: what dm-crypt writes. */
export function encryptXtsPlain64(volumeKey: Buffer, data: Buffer): Buffer {
  if (volumeKey.length !== 64 || data.length % SECTOR) throw new RangeError('a 512-bit key and whole sectors');
  const out = Buffer.alloc(data.length);
  const iv = Buffer.alloc(16);
  for (let s = 0; s < data.length / SECTOR; s++) {
    iv.fill(0);
    iv.writeBigUInt64LE(BigInt(s));
    const c = createCipheriv('aes-256-xts', volumeKey, iv);
    const enc = Buffer.concat([c.update(data.subarray(s * SECTOR, (s + 1) * SECTOR)), c.final()]);
    enc.copy(out, s * SECTOR);
  }
  return out;
}

let building: Promise<string> | undefined;

/** Path of the small LUKS2 master (raw, read-only use: clone it with cloneOf), built once. */
export function smallLuks2Master(): Promise<string> {
  return (building ??= build());
}

async function build(): Promise<string> {
  const hash = createHash('sha256').update(await fs.readFile(new URL(import.meta.url))).digest('hex').slice(0, 12);
  const dir = path.join(REPO_ROOT, '.cache', 'storage-lvm-luks2', hash);
  const out = path.join(dir, 'luks2-small.raw');
  if (await fs.access(out).then(() => true, () => false)) return out;
  const work = await tempDir('ghostprep-luks2-small-');
  try {
    // the ext4 of the data segment, from a tree
    const tree = path.join(work, 'tree');
    for (const [rel, text] of Object.entries(FILES)) {
      await fs.mkdir(path.join(tree, path.dirname(rel)), { recursive: true });
      await fs.writeFile(path.join(tree, rel), text);
    }
    for (const d of ['var/lib/dbus', 'root', 'tmp']) await fs.mkdir(path.join(tree, d), { recursive: true });
    const fsImage = path.join(work, 'fs.img');
    const dataBytes = SMALL_LUKS_PARTITION_BYTES - DATA_OFFSET;
    await fs.writeFile(fsImage, '');
    await fs.truncate(fsImage, dataBytes);
    await execa('mkfs.ext4', ['-F', '-q', '-L', 'crroot', '-d', tree, fsImage]);

    // the LUKS2 header, on a file the size of the partition: cheap PBKDF (opens in milliseconds under TCG), a known volume key
    const volume = path.join(work, 'volume.img');
    await fs.writeFile(volume, '');
    await fs.truncate(volume, SMALL_LUKS_PARTITION_BYTES);
    const keyFile = path.join(work, 'key');
    const vkFile = path.join(work, 'vk');
    const volumeKey = createHash('sha512').update('ghostprep small LUKS2 master volume key').digest();
    await fs.writeFile(keyFile, MASTER_LUKS_KEY, { mode: 0o600 });
    await fs.writeFile(vkFile, volumeKey, { mode: 0o600 });
    await execa('cryptsetup', ['luksFormat', '--batch-mode', '--type', 'luks2', '--cipher', 'aes-xts-plain64', '--key-size', '512', '--sector-size', String(SECTOR),
      '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--uuid', MASTER_LUKS_UUID, '--volume-key-file', vkFile, '--key-file', keyFile, volume]);
    // what the encryption below assumes; a cryptsetup with other defaults fails here, not in the appliance
    const dump = (await execa('cryptsetup', ['luksDump', volume])).stdout;
    if (!new RegExp(`offset:\\s+${DATA_OFFSET} \\[bytes\\]`).test(dump) || !/sector:\s+512 \[bytes\]/.test(dump) || !/cipher:\s+aes-xts-plain64/.test(dump)) {
      throw new Error(`small LUKS2 master: unexpected header layout:\n${dump}`);
    }
    const header = (await fs.readFile(volume)).subarray(0, DATA_OFFSET);

    // the disk: GPT, partition 1 = header + encrypted ext4
    const disk = path.join(work, 'disk.raw');
    await fs.writeFile(disk, '');
    await fs.truncate(disk, DISK_BYTES);
    await execa('sfdisk', ['-q', disk], { input: `label: gpt\nstart=${PART_START / SECTOR}, size=${SMALL_LUKS_PARTITION_BYTES / SECTOR}, type=L\n` });
    const fh = await fs.open(disk, 'r+');
    try {
      await fh.write(header, 0, header.length, PART_START);
      const sealed = encryptXtsPlain64(volumeKey, await fs.readFile(fsImage));
      await fh.write(sealed, 0, sealed.length, PART_START + DATA_OFFSET);
    } finally {
      await fh.close();
    }
    await fs.mkdir(dir, { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    await fs.copyFile(disk, tmp); // work/ may be on another filesystem
    await fs.chmod(tmp, 0o444); // a test writing to the shared master fails loudly
    await fs.rename(tmp, out);
    return out;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
