/**
 * Real boot test harness: a minimal Debian 12 master built with debootstrap,
 * turned into a qcow2 disk image, and booted under qemu-system-x86_64 (TCG,
 * direct kernel boot, serial console). A report unit inside the guest prints
 * what the running system believes its identity is, then powers off.
 *
 * Console protocol (one fact per line, all on /dev/ttyS0, parsed by
 * parseBootReport):
 *
 *   GHOSTPREP-BOOT begin
 *   GHOSTPREP-BOOT hostname=node01              (hostname)
 *   GHOSTPREP-BOOT fqdn=node01.example.org       (hostname -f)
 *   GHOSTPREP-BOOT machine-id=0123…              (/etc/machine-id)
 *   GHOSTPREP-BOOT dbus-machine-id=0123…         (/var/lib/dbus/machine-id)
 *   GHOSTPREP-BOOT dbus-uuidgen=0123…            (the id libdbus uses: dbus-uuidgen --get; the system
 *                                                 bus policy denies Peer.GetMachineId on the bus driver)
 *   GHOSTPREP-BOOT ssh=256 SHA256:… root@x (ED25519)   (ssh-keygen -lf of each /etc/ssh/ssh_host_*_key.pub)
 *   GHOSTPREP-BOOT sshd=256 SHA256:… 127.0.0.1 (ED25519) (what the running sshd serves, via ssh-keyscan)
 *   GHOSTPREP-BOOT link=lan 52:54:00:aa:bb:01     (non-loopback links and their MACs)
 *   GHOSTPREP-BOOT addr=lan inet 10.0.2.21/24     (ip -o addr, non-loopback)
 *   GHOSTPREP-BOOT route=default via 10.0.2.2 dev lan
 *   GHOSTPREP-BOOT failed=networking.service      (systemctl --failed)
 *   GHOSTPREP-BOOT ifup=ifup@ens3.service active  (ifupdown hotplug instances)
 *   GHOSTPREP-BOOT uptime=41.57                   (seconds since the kernel started)
 *   GHOSTPREP-BOOT end
 *
 * Plain key=value lines instead of JSON: no jq in the guest, nothing to
 * escape, and a half-printed report still tells something.
 */
import { createHash, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { REPO } from './rootfs.js';
import { uncompressKernel } from '../../src/backends/guestfs/appliance-kernel.js';

/** Boot tests are skipped when GHOSTPREP_SKIP_BOOT=1. */
export const SKIP_BOOT = process.env.GHOSTPREP_SKIP_BOOT === '1';
export const SKIP_BOOT_REASON = 'GHOSTPREP_SKIP_BOOT=1: real QEMU boot tests skipped';

export const BOOT_CACHE = process.env.GHOSTPREP_BOOT_CACHE ?? path.join(REPO, '.cache/boot');
/** The Debian mirror debootstrap fetches from: GHOSTPREP_DEBIAN_MIRROR, else debootstrap's own default for the suite. */
export const DEBIAN_MIRROR: string | undefined = process.env.GHOSTPREP_DEBIAN_MIRROR || undefined;
/** QEMU's default MAC; the master's interface config is not bound to it (plain DHCP on ens3). */
export const DEFAULT_MAC = '52:54:00:12:34:56';
/** The master's root file system UUID (every clone shares it, as real clones do). */
export const ROOT_FS_UUID = '6a1b7c5e-0d3f-4c2a-9e8b-5f4d3c2b1a09';
export const MASTER_HOSTNAME = 'master';

/**
 * The profile every boot test applies: qemu's slirp network (gateway
 * 10.0.2.2, DNS 10.0.2.3), a MAC-matched NIC renamed `lan` with a static
 * address, two host key types, a generated machine-id.
 */
export function bootProfile(description: string): string {
  return `profile: boot
description: ${description}
site: {domain: boot.example.org, gateway: 10.0.2.2, dns: [10.0.2.3]}
hostname: "{{machine.name}}"
machineId: generate
ssh:
  hostKeys: [ed25519, ecdsa]
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      set-name: lan
      addresses: ["{{machine.ip}}"]
      routes: [{to: default, via: "{{site.gateway}}"}]
      nameservers: {addresses: "{{site.dns}}"}
`;
}

export interface BootMachine { readonly name: string; readonly mac: string; readonly ip: string }

export function bootInventory(machines: readonly BootMachine[]): string {
  return `defaults: {profile: boot}
machines:
${machines.map((m) => `  - {name: ${m.name}, mac: "${m.mac}", ip: ${m.ip}}`).join('\n')}
`;
}

const SUITE = 'bookworm';
const PACKAGES = ['systemd-sysv', 'udev', 'dbus', 'openssh-server', 'ifupdown', 'isc-dhcp-client', 'iproute2', 'linux-image-amd64'];

/** The unit and script that report the booted identity on the serial console. */
const REPORT_SCRIPT = `#!/bin/sh
# ghostprep boot test: report this system's identity on the serial console, then power off.
out=/dev/ttyS0
say() { printf 'GHOSTPREP-BOOT %s\\n' "$*" >"$out"; }
# Wait (up to 60 s) for a global IPv4 address: allow-hotplug interfaces come up asynchronously.
i=0
while [ "$i" -lt 60 ] && ! ip -4 -o addr show scope global | grep -q inet; do sleep 1; i=$((i + 1)); done
sleep 2
say begin
say "hostname=$(hostname)"
say "fqdn=$(hostname -f 2>/dev/null)"
say "machine-id=$(cat /etc/machine-id 2>/dev/null)"
say "dbus-machine-id=$(cat /var/lib/dbus/machine-id 2>/dev/null)"
say "dbus-uuidgen=$(dbus-uuidgen --get 2>&1)"
for k in /etc/ssh/ssh_host_*_key.pub; do
  [ -e "$k" ] && say "ssh=$(ssh-keygen -lf "$k")"
done
# what the running sshd serves (a key exchange per key type: slow under TCG on a busy host, so retry)
for try in 1 2 3; do
  served=$(ssh-keyscan -T 30 127.0.0.1 2>/dev/null | ssh-keygen -lf - 2>/dev/null)
  [ -n "$served" ] && break
  sleep 3
done
printf '%s\n' "$served" | while read -r line; do [ -n "$line" ] && say "sshd=$line"; done
say "ssh-service=$(systemctl is-active ssh.service)"
ip -o link show | while read -r idx name rest; do
  name=\${name%:}; name=\${name%@*}
  [ "$name" = lo ] && continue
  mac=$(cat "/sys/class/net/$name/address" 2>/dev/null)
  say "link=$name $mac"
done
ip -o addr show | while read -r idx name fam addr rest; do
  [ "$name" = lo ] && continue
  say "addr=$name $fam $addr"
done
ip route show default | while read -r line; do say "route=$line"; done
ip -6 route show default | while read -r line; do say "route=$line"; done
systemctl --failed --plain --no-legend 2>/dev/null | while read -r unit rest; do say "failed=$unit"; done
systemctl list-units --all --plain --no-legend 'ifup@*' 2>/dev/null | while read -r unit load active sub rest; do say "ifup=$unit $active"; done
say "uptime=$(cut -d' ' -f1 /proc/uptime)"
say end
systemctl poweroff --no-block
`;

const REPORT_UNIT = `[Unit]
Description=ghostprep boot test: report identity on the serial console and power off
Wants=network-online.target
After=network-online.target ssh.service systemd-user-sessions.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ghostprep-boot-report
TimeoutStartSec=180
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

const MASTER_INTERFACES = `# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens3
iface ens3 inet dhcp
`;

/**
 * initramfs-tools' default MODULES=most takes 4 minutes per initrd in a
 * chroot here (and the kernel and initramfs-tools postinsts build it twice);
 * an explicit list of what a QEMU guest needs takes 15 s. The harness checks
 * that the initrd holds virtio_blk, virtio_pci and ext4.
 */
const INITRAMFS_CONF = `# ghostprep boot test: only the modules a virtio QEMU guest needs (fast to build)\nMODULES=list\n`;
const INITRAMFS_HOOK = `#!/bin/sh
# ghostprep boot test: the modules to mount the root file system on virtio-blk
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk virtio_net virtio_rng ext4 crc32c_generic; do force_load "$m"; done
`;

/** Shell run in the debootstrap tree (chroot) to make it a realistic master. */
export const MASTER_CUSTOMIZE = `set -e
echo ${MASTER_HOSTNAME} > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t${MASTER_HOSTNAME}\\n\\n::1\\tlocalhost ip6-localhost ip6-loopback\\nff02::1\\tip6-allnodes\\nff02::2\\tip6-allrouters\\n' > /etc/hosts
printf 'UUID=${ROOT_FS_UUID} / ext4 errors=remount-ro 0 1\\n' > /etc/fstab
printf 'nameserver 10.0.2.3\\n' > /etc/resolv.conf
# the master's machine-id (systemd's postinst made one; make sure it is real)
if ! grep -Eq '^[0-9a-f]{32}$' /etc/machine-id; then systemd-machine-id-setup; fi
# the master's SSH host keys (openssh-server's postinst made them)
ls /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_rsa_key.pub >/dev/null
usermod -p '!' root
chmod 0755 /usr/local/sbin/ghostprep-boot-report
systemctl enable ghostprep-boot-report.service
# nothing that would only slow a 40 s boot down
systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true
systemctl mask systemd-timesyncd.service 2>/dev/null || true
`;

export const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
/**
 * What determines the debootstrap tree (stage 1) and the master image (stage 2); their hashes name the cache
 * entries. Not the mirror: every mirror serves the same suite.
 */
const DEBOOTSTRAP_RECIPE = JSON.stringify({ v: 1, SUITE, PACKAGES, INITRAMFS_CONF, INITRAMFS_HOOK });
export const DEBOOTSTRAP_HASH = hash(DEBOOTSTRAP_RECIPE);
const RECIPE = JSON.stringify({ v: 1, DEBOOTSTRAP_HASH, REPORT_SCRIPT, REPORT_UNIT, MASTER_INTERFACES, CUSTOMIZE: MASTER_CUSTOMIZE, ROOT_FS_UUID, sizeMiB: 2048 });
export const RECIPE_HASH = hash(RECIPE);

export interface DebianBase {
  /** qcow2 image of the master (one ext4 partition, MBR); never written by the tests. */
  readonly image: string;
  readonly kernel: string;
  readonly initrd: string;
  /** The master's root tree (the image's content), for rootfs: targets; copy it before writing. */
  readonly rootfs: string;
  /** Cache entry directory. */
  readonly dir: string;
  /** Build timings of this cache entry, in ms (measured when it was built). */
  readonly timings: Record<string, number>;
  /** True if this call found the entry cached. */
  readonly cached: boolean;
}

export type Log = (msg: string) => void;
export const defaultLog: Log = (msg) => { if (process.env.GHOSTPREP_BOOT_VERBOSE !== '0') process.stderr.write(`      [boot] ${msg}\n`); };

export async function timed<T>(timings: Record<string, number>, key: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try { return await fn(); } finally { timings[key] = Date.now() - t0; }
}

let basePromise: Promise<DebianBase> | undefined;

/**
 * The minimal Debian 12 master (debootstrap --variant=minbase), cached under
 * .cache/boot/debian12-HASH where HASH is that of the build recipe. The first
 * call in a process builds or finds it; later calls reuse the same promise.
 */
export function buildDebianBase(log: Log = defaultLog): Promise<DebianBase> {
  basePromise ??= withBuildLock(log, () => buildDebianBaseUncached(log)).catch((e: unknown) => { basePromise = undefined; throw e; });
  return basePromise;
}

/**
 * One build at a time across processes (test files run in parallel): the
 * first takes `.cache/boot/.build-lock` (mkdir is atomic) and builds, the
 * others wait and then find the cache. A lock whose process is gone is taken over.
 */
export async function withBuildLock<T>(log: Log, fn: () => Promise<T>, name = '.build-lock'): Promise<T> {
  const lock = path.join(BOOT_CACHE, name);
  mkdirSync(BOOT_CACHE, { recursive: true });
  for (let announced = false; ; announced = true) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const pid = Number(readFileIfAny(path.join(lock, 'pid')));
      if (pid && !alive(pid)) { rmSync(lock, { recursive: true, force: true }); continue; }
      if (!announced) log('another test process is building the boot image; waiting');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function readFileIfAny(p: string): string {
  try { return readFileSync(p, 'utf8'); } catch { return ''; }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export const CHROOT_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };

/**
 * Stage 1, `.cache/boot/debootstrap-HASH1/rootfs`: the pristine debootstrap
 * tree (slow: minutes). Stage 2, `.cache/boot/debian12-HASH2/`: a copy made
 * into the master (hostname, network, report unit), its disk image, kernel
 * and initrd (seconds). Editing the report script rebuilds stage 2 only.
 */
async function buildDebianBaseUncached(log: Log): Promise<DebianBase> {
  const dir = path.join(BOOT_CACHE, `debian12-${RECIPE_HASH}`);
  const result = (cached: boolean): DebianBase => ({
    image: path.join(dir, 'base.qcow2'), kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), rootfs: path.join(dir, 'rootfs'), dir,
    timings: JSON.parse(readFileSync(path.join(dir, 'timings.json'), 'utf8')) as Record<string, number>, cached,
  });
  if (existsSync(path.join(dir, 'timings.json'))) { log(`base image cached: ${dir}`); return result(true); }
  if (process.getuid?.() !== 0) throw new Error('building the Debian boot image needs root (debootstrap, chroot, file owners)');

  mkdirSync(BOOT_CACHE, { recursive: true });
  removeStaleBuilds();
  const stage1 = await debootstrapTree(log);
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const root = path.join(work, 'rootfs');
  const timings: Record<string, number> = { ...stage1.timings };
  try {
    log('customizing a copy of the debootstrap tree into the master');
    await timed(timings, 'customize', async () => {
      await copyTree(stage1.rootfs, root);
      writeFileSync(path.join(root, 'etc/network/interfaces'), MASTER_INTERFACES);
      mkdirSync(path.join(root, 'usr/local/sbin'), { recursive: true });
      writeFileSync(path.join(root, 'usr/local/sbin/ghostprep-boot-report'), REPORT_SCRIPT, { mode: 0o755 });
      writeFileSync(path.join(root, 'etc/systemd/system/ghostprep-boot-report.service'), REPORT_UNIT, { mode: 0o644 });
      await execa('chroot', [root, '/bin/sh', '-c', MASTER_CUSTOMIZE], { all: true, env: CHROOT_ENV }).catch(fail('customizing the master'));
      // the initramfs must be able to mount the root on virtio-blk
      const initrd = kernelFile(root, 'initrd.img');
      const { stdout } = await execa('chroot', [root, 'lsinitramfs', `/boot/${path.basename(initrd)}`], { env: CHROOT_ENV });
      for (const mod of ['virtio_blk.ko', 'virtio_pci.ko', 'ext4.ko']) {
        if (!stdout.split('\n').some((l) => l.endsWith(mod) || l.endsWith(`${mod}.xz`) || l.endsWith(`${mod}.zst`))) throw new Error(`${initrd} has no ${mod}`);
      }
      cpSync(kernelFile(root, 'vmlinuz'), path.join(work, 'vmlinuz'));
      cpSync(initrd, path.join(work, 'initrd.img'));
    });
    log('building base.qcow2 from the tree');
    await timed(timings, 'image', () => buildImageFromTree(root, path.join(work, 'base.qcow2')));
    writeFileSync(path.join(work, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
    writeFileSync(path.join(work, 'recipe.json'), RECIPE + '\n');
    removeOtherEntries('debian12-');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  log(`base image built: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}`);
  return result(false);
}

export const fail = (what: string) => (e: unknown): never => { throw new Error(`${what} failed:\n${tail(String((e as { all?: string }).all ?? e), 40)}`); };

/** The pristine debootstrap tree (stage 1); exists once buildDebianBase() has resolved. Never write it: copy it. */
export function debootstrapRootfs(): string {
  return path.join(BOOT_CACHE, `debootstrap-${DEBOOTSTRAP_HASH}`, 'rootfs');
}

async function debootstrapTree(log: Log): Promise<{ rootfs: string; timings: Record<string, number> }> {
  const dir = path.join(BOOT_CACHE, `debootstrap-${DEBOOTSTRAP_HASH}`);
  const done = path.join(dir, 'timings.json');
  if (existsSync(done)) {
    log(`debootstrap tree cached: ${dir}`);
    return { rootfs: path.join(dir, 'rootfs'), timings: JSON.parse(readFileSync(done, 'utf8')) as Record<string, number> };
  }
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const root = path.join(work, 'rootfs');
  const timings: Record<string, number> = {};
  try {
    log(`debootstrap ${SUITE} (minbase + ${PACKAGES.join(',')}) from ${DEBIAN_MIRROR ?? 'its default mirror'} into ${root}`);
    // Two stages, so that the initramfs configuration is in place before the kernel's postinst builds it.
    await timed(timings, 'debootstrapDownload', () => execa('debootstrap', ['--foreign', '--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, root, ...(DEBIAN_MIRROR ? [DEBIAN_MIRROR] : [])], { all: true }).catch(fail('debootstrap (first stage)')));
    mkdirSync(path.join(root, 'etc/initramfs-tools/conf.d'), { recursive: true });
    mkdirSync(path.join(root, 'etc/initramfs-tools/hooks'), { recursive: true });
    writeFileSync(path.join(root, 'etc/initramfs-tools/conf.d/ghostprep-boot'), INITRAMFS_CONF);
    writeFileSync(path.join(root, 'etc/initramfs-tools/hooks/ghostprep-boot'), INITRAMFS_HOOK, { mode: 0o755 });
    await timed(timings, 'debootstrapInstall', () => execa('chroot', [root, '/debootstrap/debootstrap', '--second-stage'], { all: true, env: CHROOT_ENV }).catch(fail('debootstrap (second stage)')));
    await execa('chroot', [root, '/bin/sh', '-c', 'apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log'], { env: CHROOT_ENV });
    writeFileSync(path.join(work, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
    removeOtherEntries('debootstrap-');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  log(`debootstrap took ${((timings.debootstrapDownload! + timings.debootstrapInstall!) / 1000).toFixed(0)} s (download ${(timings.debootstrapDownload! / 1000).toFixed(0)} s, install ${(timings.debootstrapInstall! / 1000).toFixed(0)} s)`);
  return { rootfs: path.join(dir, 'rootfs'), timings };
}

/**
 * Drop finished cache entries of older recipes (same prefix, other hash),
 * keeping the newest other one: a second checkout or a concurrent run of an
 * older build may still be using it.
 */
export function removeOtherEntries(prefix: string): void {
  const others = readdirSync(BOOT_CACHE).filter((n) => n.startsWith(prefix) && !n.includes('.tmp-'))
    .map((n) => ({ n, t: statSync(path.join(BOOT_CACHE, n)).mtimeMs })).sort((a, b) => b.t - a.t);
  for (const { n } of others.slice(1)) rmSync(path.join(BOOT_CACHE, n), { recursive: true, force: true });
}

/** Remove half-built cache entries (DIR.tmp-PID) whose process is gone. */
export function removeStaleBuilds(): void {
  for (const name of readdirSync(BOOT_CACHE)) {
    const pid = Number(/\.tmp-(\d+)$/.exec(name)?.[1]);
    if (!pid) continue;
    if (!alive(pid)) rmSync(path.join(BOOT_CACHE, name), { recursive: true, force: true });
  }
}

function kernelFile(root: string, prefix: 'vmlinuz' | 'initrd.img'): string {
  const names = readdirSync(path.join(root, 'boot')).filter((n) => n.startsWith(`${prefix}-`)).sort();
  if (!names.length) throw new Error(`no /boot/${prefix}-* in ${root}`);
  return path.join(root, 'boot', names.at(-1)!);
}

/**
 * A qcow2 disk with one MBR partition (start 1 MiB) holding an ext4 file
 * system made from `tree` (mkfs.ext4 -d keeps owners, modes, xattrs, hard
 * links and device nodes), with the master's file system UUID. No loop
 * devices, no mounts.
 */
export async function buildImageFromTree(tree: string, out: string, opts: { sizeMiB?: number; uuid?: string } = {}): Promise<string> {
  const sizeMiB = opts.sizeMiB ?? 2048;
  const raw = `${out}.raw`;
  rmSync(raw, { force: true });
  try {
    await execa('truncate', ['-s', `${sizeMiB}M`, raw]);
    await execa('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, type=83, bootable\n' });
    const partKiB = (sizeMiB - 1) * 1024;
    await execa('mkfs.ext4', ['-q', '-F', '-L', 'root', '-U', opts.uuid ?? ROOT_FS_UUID, '-E', 'offset=1048576', '-d', tree, raw, `${partKiB}k`], { all: true });
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, out]);
  } finally {
    rmSync(raw, { force: true });
  }
  return out;
}

/** A copy of the master's tree (owners, modes, hard links, xattrs kept) for `rootfs:` targets. */
export async function copyTree(src: string, dest: string): Promise<string> {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(path.dirname(dest), { recursive: true });
  await execa('cp', ['-a', '--', src, dest]);
  return dest;
}

export interface BootReport {
  readonly hostname: string;
  readonly fqdn: string;
  readonly machineId: string;
  /** /var/lib/dbus/machine-id, and the id libdbus uses (dbus-uuidgen --get). */
  readonly dbusMachineId: string;
  readonly dbusReportedMachineId: string;
  /** SHA256:… of each /etc/ssh/ssh_host_*_key.pub, sorted. */
  readonly sshFingerprints: string[];
  /** {type, sha256} of each host key file (type lowercase: ed25519, ecdsa, rsa). */
  readonly sshKeys: Array<{ type: string; sha256: string }>;
  /** SHA256:… of the keys the running sshd serves (ssh-keyscan 127.0.0.1), sorted. */
  readonly sshdFingerprints: string[];
  readonly sshService: string;
  readonly links: Array<{ ifname: string; mac: string }>;
  readonly addresses: Array<{ ifname: string; family: 'inet' | 'inet6'; address: string }>;
  readonly routes: string[];
  readonly failedUnits: string[];
  /** ifup@IFACE.service instances and their state (ifupdown's allow-hotplug handling). */
  readonly ifupUnits: string[];
  /** Guest uptime when the report was printed, in seconds. */
  readonly uptimeS: number;
  readonly console: string;
  readonly durationMs: number;
}

/** Parse the GHOSTPREP-BOOT lines of a console log; undefined if no complete report. */
export function parseBootReport(consoleText: string, durationMs = 0): BootReport | undefined {
  const lines = consoleText.split(/\r?\n/).map((l) => l.replace(/\r/g, '')).map((l) => /GHOSTPREP-BOOT (.*)$/.exec(l)?.[1]).filter((l): l is string => l !== undefined);
  const begin = lines.lastIndexOf('begin');
  if (begin < 0) return undefined;
  const body = lines.slice(begin + 1);
  if (!body.includes('end')) return undefined;
  const kv = body.slice(0, body.indexOf('end')).map((l) => { const i = l.indexOf('='); return [l.slice(0, i), l.slice(i + 1)] as const; });
  const one = (k: string): string => kv.find(([key]) => key === k)?.[1].trim() ?? '';
  const all = (k: string): string[] => kv.filter(([key]) => key === k).map(([, v]) => v.trim());
  const fp = (line: string): { type: string; sha256: string } => {
    const m = /(SHA256:[A-Za-z0-9+/=]+).*\((\w+)\)\s*$/.exec(line);
    return { sha256: m?.[1] ?? '', type: (m?.[2] ?? '').toLowerCase() };
  };
  const sshKeys = all('ssh').map(fp).sort((a, b) => a.type.localeCompare(b.type));
  return {
    hostname: one('hostname'), fqdn: one('fqdn'), machineId: one('machine-id'),
    dbusMachineId: one('dbus-machine-id'), dbusReportedMachineId: one('dbus-uuidgen'),
    sshKeys, sshFingerprints: sshKeys.map((k) => k.sha256).sort(),
    sshdFingerprints: [...new Set(all('sshd').map((l) => fp(l).sha256))].sort(),
    sshService: one('ssh-service'),
    links: all('link').map((l) => { const [ifname = '', mac = ''] = l.split(/\s+/); return { ifname, mac }; }),
    addresses: all('addr').map((l) => { const [ifname = '', family = '', address = ''] = l.split(/\s+/); return { ifname, family: family as 'inet' | 'inet6', address }; }),
    routes: all('route'), failedUnits: all('failed'), ifupUnits: all('ifup'), uptimeS: Number(one('uptime')) || 0, console: consoleText, durationMs,
  };
}

export interface BootOptions {
  readonly kernel: string;
  readonly initrd: string;
  /** MAC of the virtio NIC (default QEMU's 52:54:00:12:34:56). */
  readonly mac?: string;
  /** Kill QEMU after this long (default 240 s, or $GHOSTPREP_BOOT_TIMEOUT_S: TCG is slow). */
  readonly timeoutMs?: number;
  /** Boot with -snapshot (default true): the image is not modified by booting. */
  readonly snapshot?: boolean;
  /** Image format (default from the extension: qcow2 or raw). */
  readonly format?: 'qcow2' | 'raw';
  /** Extra kernel command line. */
  readonly append?: string;
  /** Save the console log here as well. */
  readonly consoleLog?: string;
  /**
   * Several virtio NICs instead of the one on slot 3 (`mac` is then unused): each on its own
   * restricted user network (DHCP 10.0.2.15, no IPv6 router advertisements) at PCI slot `slot`,
   * so the kernel names it `ens{slot}`.
   */
  readonly nics?: ReadonlyArray<{ readonly mac: string; readonly slot: number }>;
  readonly log?: Log;
}

export class BootError extends Error {
  constructor(message: string, readonly console: string) {
    super(`${message}\n--- last 60 console lines ---\n${tail(consoleTextClean(console), 60)}`);
    this.name = 'BootError';
  }
}

function consoleTextClean(s: string): string {
  // drop ANSI colour/cursor sequences systemd prints on the console
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

function tail(s: string, n: number): string {
  return s.split('\n').slice(-n).join('\n');
}

/**
 * Units no boot test looks at, masked on the kernel command line of every boot:
 * the serial getty (the console carries the report), the tty1 getty, kernel
 * module loaders and pseudo-file-system mounts for hardware and debugging the
 * guest lacks, and periodic maintenance. Under TCG each costs a process start
 * or more; together about 7 s of a 48 s boot.
 */
const BOOT_MASKS = [
  'serial-getty@ttyS0.service', 'getty@tty1.service', 'e2scrub_reap.service', 'dpkg-db-backup.timer',
  'modprobe@drm.service', 'modprobe@efi_pstore.service', 'modprobe@fuse.service', 'modprobe@loop.service',
  'sys-kernel-debug.mount', 'sys-kernel-tracing.mount', 'sys-kernel-config.mount', 'sys-fs-fuse-connections.mount',
  'dev-hugepages.mount', 'dev-mqueue.mount',
];

/**
 * The guest kernel as QEMU starts it fastest: uncompressed, with its PVH entry
 * (as ghostprep does for its appliance), kept next to it as KERNEL.vmlinux.
 * Under TCG the bzImage's own xz decompression costs about 4 s a boot. A
 * kernel that cannot be used so is booted as it is.
 */
function directBootKernel(kernel: string): string {
  const vmlinux = `${kernel}.vmlinux`;
  if (existsSync(vmlinux)) return vmlinux;
  const bytes = uncompressKernel(kernel);
  if ('reason' in bytes) return kernel;
  const temp = `${vmlinux}.tmp-${process.pid}`;
  writeFileSync(temp, bytes);
  renameSync(temp, vmlinux);
  return vmlinux;
}

/**
 * Boot `image` under qemu-system-x86_64 -accel tcg with direct kernel boot and
 * a serial console on a pipe, wait for the guest's report and its power-off.
 * The NIC is virtio-net on PCI slot 3 (so the kernel name is ens3, as on the
 * master) with user-mode networking restricted to the guest (restrict=on).
 * QEMU is always killed on timeout or error: no orphans.
 */
export async function bootAndReport(image: string, opts: BootOptions): Promise<BootReport> {
  const log = opts.log ?? defaultLog;
  const timeoutMs = opts.timeoutMs ?? (Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 240_000);
  const format = opts.format ?? (image.endsWith('.qcow2') ? 'qcow2' : 'raw');
  const mac = opts.mac ?? DEFAULT_MAC;
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-m', '1024', '-smp', '1',
    '-nographic', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-nodefaults',
    '-kernel', directBootKernel(opts.kernel), '-initrd', opts.initrd,
    '-append', `root=/dev/vda1 ro console=ttyS0,115200 panic=-1 ${BOOT_MASKS.map((u) => `systemd.mask=${u}`).join(' ')} ${opts.append ?? ''}`.trim(),
    '-drive', `file=${image},format=${format},if=none,id=d0,cache=unsafe`,
    '-device', 'virtio-blk-pci,drive=d0,addr=0x4',
    ...(opts.nics
      ? opts.nics.flatMap((n, i) => ['-netdev', `user,id=n${i},restrict=on,ipv6=off`, '-device', `virtio-net-pci,netdev=n${i},mac=${n.mac},addr=0x${n.slot.toString(16)}`])
      : ['-netdev', 'user,id=n0,restrict=on', '-device', `virtio-net-pci,netdev=n0,mac=${mac},addr=0x3`]),
    '-device', 'virtio-rng-pci,addr=0x5',
  ];
  if (opts.snapshot ?? true) args.push('-snapshot');
  log(`booting ${path.basename(image)} (${opts.nics ? `${opts.nics.length} NICs` : `mac ${mac}`})`);
  const t0 = Date.now();
  const child = execa('qemu-system-x86_64', args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false, cleanup: true, forceKillAfterDelay: 5000 });
  let out = '';
  let err = '';
  let reportAt = 0;
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    out += d;
    if (!reportAt && /GHOSTPREP-BOOT end/.test(out)) reportAt = Date.now();
  });
  child.stderr!.on('data', (d: string) => { err += d; });
  let timedOut = false;
  let afterReport: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  if (!(opts.snapshot ?? true)) log('booting without -snapshot: the image is written');
  // The guest powers off right after the report. With -snapshot nothing of the run is kept, so
  // there is no point in waiting for a shutdown that takes 10-20 s under TCG: stop QEMU at once.
  // Without it, give the clean shutdown up to 60 s.
  const snapshot = opts.snapshot ?? true;
  const watch = setInterval(() => {
    if (reportAt && !afterReport) afterReport = setTimeout(() => child.kill(snapshot ? 'SIGTERM' : 'SIGKILL'), snapshot ? 500 : 60_000);
  }, 250);
  let exit: Awaited<typeof child>;
  try {
    exit = await child;
  } finally {
    clearTimeout(timer);
    clearInterval(watch);
    if (afterReport) clearTimeout(afterReport);
    if (child.exitCode === null && !child.killed) child.kill('SIGKILL');
  }
  const durationMs = Date.now() - t0;
  if (opts.consoleLog) writeFileSync(opts.consoleLog, out);
  const report = parseBootReport(consoleTextClean(out), reportAt ? reportAt - t0 : durationMs);
  if (!report) {
    const why = timedOut ? `timed out after ${timeoutMs / 1000} s` : `qemu exited (code ${exit.exitCode ?? exit.signal}) ${err.trim()}`;
    throw new BootError(`boot of ${image}: no complete GHOSTPREP-BOOT report: ${why}`, out);
  }
  log(`${path.basename(image)}: report after ${(report.durationMs / 1000).toFixed(1)} s (guest uptime ${report.uptimeS.toFixed(1)} s), qemu gone after ${(durationMs / 1000).toFixed(1)} s`);
  return report;
}

/** True if this machine can build and boot the image (root, debootstrap, qemu, mkfs.ext4). */
export async function bootPrerequisites(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (debootstrap and file owners need it)';
  for (const tool of ['debootstrap', 'qemu-system-x86_64', 'qemu-img', 'mkfs.ext4', 'sfdisk']) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false, env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
    if (r.exitCode !== 0) return `${tool} not found (see .ci/apt-packages.d/boot.txt)`;
  }
  return undefined;
}

/** A fresh scratch directory for one test, under the OS temp dir. */
export function bootScratch(prefix: string): string {
  const dir = path.join(os.tmpdir(), `ghostprep-boot-${prefix}-${randomUUID().slice(0, 8)}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Size in bytes of a file (for log lines). */
export function fileSize(p: string): number {
  return statSync(p).size;
}

/** A clone's identity as the run report gives it (what the boot must show). */
export interface Identity { hostname: string; fqdn: string; machineId: string | null; sshHostKeys: Array<{ type: string; sha256: string }>; addresses: string[] }
export interface RunReport { machines: Array<{ name: string; status: string; error: string | null; identity: Identity | null }> }

/** The identities of a run report whose machines must all be ok. */
export function readReport(file: string): Map<string, Identity> {
  const report = JSON.parse(readFileSync(file, 'utf8')) as RunReport;
  const out = new Map<string, Identity>();
  for (const m of report.machines) {
    expect(m.status, `${m.name}: ${m.error}`).to.equal('ok');
    expect(m.identity, m.name).to.not.equal(null);
    out.set(m.name, m.identity!);
  }
  return out;
}

/** The master's machine-id and SSH host key fingerprints, which no clone may keep. */
export async function masterIdentity(base: DebianBase): Promise<{ machineId: string; fingerprints: string[] }> {
  const fingerprints: string[] = [];
  for (const t of ['ed25519', 'ecdsa', 'rsa']) {
    const { stdout } = await execa('ssh-keygen', ['-lf', path.join(base.rootfs, `etc/ssh/ssh_host_${t}_key.pub`)]);
    fingerprints.push(/SHA256:\S+/.exec(stdout)![0]);
  }
  return { machineId: readFileSync(path.join(base.rootfs, 'etc/machine-id'), 'utf8').trim(), fingerprints };
}
