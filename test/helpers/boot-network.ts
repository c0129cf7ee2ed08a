/**
 * The network boot matrix: one Debian 12 master per network stack (netplan
 * on networkd, systemd-networkd alone, NetworkManager with keyfiles, ifupdown
 * with /etc/network/interfaces), clones customized by `ghostprep apply`
 * (`networkRenderer: auto`), booted under QEMU/TCG with several virtio NICs,
 * and what the running kernel reports (`ip -j -d link`, `ip -j addr`,
 * `ip -j route`) compared with what the profile asked for.
 *
 * Each master is derived from the cached debootstrap tree (stage 1 of
 * boot.ts) by a chroot `apt-get install` of its stack's packages, cached
 * under .cache/boot/netpkgs-STACK-HASH (HASH: that of the recipe); the master's own files
 * (network config, hostname, report unit) are written on each copy (makeMaster).
 *
 * Console protocol, on top of boot.ts's begin/end lines:
 *   GHOSTPREP-BOOT waited=12 missing=             (seconds spent waiting for the expected addresses)
 *   GHOSTPREP-BOOT json-link=[{"ifindex":1,…     (ip -j -d link, folded into 300-character chunks)
 *   GHOSTPREP-BOOT json-addr=…                    (ip -j addr)
 *   GHOSTPREP-BOOT json-route4=… / json-route6=…  (ip -j -4 / -6 route show table main)
 *   GHOSTPREP-BOOT failed=UNIT                    (systemctl --failed)
 * The expected addresses come on the kernel command line (ghostprep.expect=a,b,…), and the
 * bond and bridge ports with their masters (ghostprep.expect-master=port:master,…): the
 * report waits up to 420 s (guest uptime) for all of them, then 10 s more so that what should not come
 * up (the master's DHCP on a clone NIC) has the time to show.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import {
  BOOT_CACHE, CHROOT_ENV, DEBOOTSTRAP_HASH, MASTER_CUSTOMIZE, SKIP_BOOT, SKIP_BOOT_REASON, bootAndReport, bootPrerequisites, bootScratch,
  buildDebianBase, buildImageFromTree, copyTree, debootstrapRootfs, defaultLog, fail, hash, removeOtherEntries, removeStaleBuilds, timed,
  withBuildLock, type Log,
} from './boot.js';
import { REPO } from './rootfs.js';

export type Stack = 'netplan' | 'networkd' | 'network-manager' | 'eni';
export const STACKS: readonly Stack[] = ['netplan', 'networkd', 'network-manager', 'eni'];

interface MasterFile { readonly path: string; readonly content: string; readonly mode: number }

interface StackRecipe {
  /** Installed with apt-get --no-install-recommends into a copy of the debootstrap tree. */
  readonly install: readonly string[];
  /** Purged after (the debootstrap tree has ifupdown and isc-dhcp-client). */
  readonly purge: readonly string[];
  /** systemctl enable, in the chroot. */
  readonly enable: readonly string[];
  /**
   * The master's own network config, both kinds masters have: one bound to its NIC (ens3, QEMU's
   * default MAC) and one matching every `en*` interface (two files; for ifupdown two stanzas of
   * /etc/network/interfaces). ghostprep's stale rules judge each file, and each ENI stanza, on its own.
   */
  readonly master: readonly MasterFile[];
  /** A file of the clone that shows ghostprep picked this stack's renderer. */
  readonly rendered: string;
}

const MASTER_MAC = '52:54:00:12:34:56';

const RECIPES: Record<Stack, StackRecipe> = {
  netplan: {
    install: ['netplan.io'], purge: ['ifupdown', 'isc-dhcp-client'], enable: ['systemd-networkd.service'],
    master: [
      { path: 'etc/netplan/01-master.yaml', mode: 0o600, content: `network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    ens3:\n      match: {macaddress: "${MASTER_MAC}"}\n      set-name: ens3\n      dhcp4: true\n` },
      { path: 'etc/netplan/02-all-wired.yaml', mode: 0o600, content: `network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    all-wired:\n      match: {name: "en*"}\n      dhcp4: true\n` },
    ],
    rendered: 'etc/netplan/50-ghostprep.yaml',
  },
  networkd: {
    install: [], purge: ['ifupdown', 'isc-dhcp-client'], enable: ['systemd-networkd.service'],
    master: [
      { path: 'etc/systemd/network/20-wired.network', mode: 0o644, content: '[Match]\nName=ens3\n\n[Network]\nDHCP=ipv4\n' },
      { path: 'etc/systemd/network/25-all-wired.network', mode: 0o644, content: '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' },
    ],
    rendered: 'etc/systemd/network',
  },
  'network-manager': {
    install: ['network-manager'], purge: ['ifupdown', 'isc-dhcp-client'], enable: ['NetworkManager.service'],
    master: [
      {
        path: 'etc/NetworkManager/system-connections/Wired connection 1.nmconnection', mode: 0o600,
        content: '[connection]\nid=Wired connection 1\nuuid=8f1f3a52-3c0e-4d7b-9a51-0f2b1c9e7d01\ntype=ethernet\ninterface-name=ens3\n\n[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=ignore\n',
      },
      {
        path: 'etc/NetworkManager/system-connections/Wired connection 2.nmconnection', mode: 0o600,
        content: '[connection]\nid=Wired connection 2\nuuid=8f1f3a52-3c0e-4d7b-9a51-0f2b1c9e7d02\ntype=ethernet\nmulti-connect=3\n\n[match]\ninterface-name=en*\n\n[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=ignore\n',
      },
    ],
    rendered: 'etc/NetworkManager/system-connections',
  },
  eni: {
    install: ['ifenslave', 'bridge-utils', 'vlan'], purge: [], enable: [],
    master: [
      { path: 'etc/network/interfaces', mode: 0o644, content: 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n\nallow-hotplug /en*=wired\niface wired inet dhcp\n' },
    ],
    rendered: 'etc/network/interfaces.d/50-ghostprep',
  },
};

const NET_REPORT_SCRIPT = `#!/bin/sh
# ghostprep network boot test: report the running network on the serial console, then power off.
out=/dev/ttyS0
say() { printf 'GHOSTPREP-BOOT %s\\n' "$*" >"$out"; }
expect=$(sed -n 's/.*ghostprep\\.expect=\\([^ ]*\\).*/\\1/p' /proc/cmdline | tr ',' ' ')
ports=$(sed -n 's/.*ghostprep\\.expect-master=\\([^ ]*\\).*/\\1/p' /proc/cmdline | tr ',' ' ')
start=$(cut -d. -f1 /proc/uptime)
while :; do
  missing=
  now=$(ip -o addr show)
  for a in $expect; do printf '%s\\n' "$now" | grep -qF " $a/" || missing="$missing $a"; done
  for pm in $ports; do
    l=$(readlink "/sys/class/net/\${pm%%:*}/master" 2>/dev/null)
    [ "\${l##*/}" = "\${pm#*:}" ] || missing="$missing \${pm%%:*}>\${pm#*:}"
  done
  i=$(( $(cut -d. -f1 /proc/uptime) - start ))
  [ -z "$missing" ] || [ "$i" -ge 420 ] && break
  sleep 2
done
# what must NOT come up (the master's DHCP on a clone NIC) gets the time to show
sleep 10
say begin
say "hostname=$(hostname)"
say "waited=$i missing=$missing"
json() { key=$1; shift; { "$@" 2>&1 | tr -d '\\n'; echo; } | fold -w 300 | while IFS= read -r l; do say "$key=$l"; done; }
json json-link ip -j -d link show
json json-addr ip -j addr show
json json-route4 ip -j -4 route show table main
json json-route6 ip -j -6 route show table main
systemctl --failed --plain --no-legend 2>/dev/null | while read -r unit rest; do say "failed=$unit"; done
say "uptime=$(cut -d' ' -f1 /proc/uptime)"
say end
systemctl poweroff --no-block
`;

const NET_REPORT_UNIT = `[Unit]
Description=ghostprep network boot test: report the network on the serial console and power off
After=network.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ghostprep-boot-report
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

/** Keeps invoke-rc.d from starting services in the chroot. */
const POLICY_RC_D = '#!/bin/sh\nexit 101\n';

function installScript(r: StackRecipe): string {
  return `set -e
apt-get update -qq
${r.install.length ? `apt-get install -y -qq --no-install-recommends ${r.install.join(' ')}` : ': nothing to install'}
${r.purge.length ? `apt-get purge -y -qq ${r.purge.join(' ')}` : ': nothing to purge'}
${r.enable.map((u) => `systemctl enable ${u}`).join('\n')}
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log /usr/sbin/policy-rc.d
`;
}

/**
 * Units a test boot does not need, masked on every network master: under TCG on a busy host
 * each of them costs minutes (e2scrub_reap ran 13 min in one boot) and can fail on a timeout.
 */
const MASKED = ['e2scrub_reap.service', 'ssh.service', 'ssh.socket', 'getty@tty1.service', 'systemd-logind.service', 'systemd-binfmt.service'];

/**
 * Kernel modules udev would load for the emulated PC that nothing here uses (floppy, IDE,
 * KVM, crypto and wireless helpers...): each costs seconds under TCG during coldplug, and
 * ifupdown-pre.service gives udev 3 minutes to settle.
 */
const BLACKLIST = ['floppy', 'pcspkr', 'kvm', 'kvm_amd', 'kvm_intel', 'ata_piix', 'ata_generic', 'i2c_piix4', 'tls', 'cfg80211', 'drm', 'bochs',
  'psmouse', 'serio_raw', 'evdev', 'joydev', 'aesni_intel', 'ghash_clmulni_intel', 'cryptd', 'crc32_pclmul', 'sha512_ssse3', 'sha256_ssse3',
  'sha1_ssse3', 'polyval_clmulni', 'polyval_generic', 'powernow_k8', 'button', 'sg', 'sr_mod', 'cdrom', 'qemu_fw_cfg', 'efi_pstore'];

/** Kernel command line of a matrix boot: longer systemd start timeouts (TCG on a busy host), fewer modules, quieter console. */
export function matrixAppend(expectAddrs: readonly string[], ports: ReadonlyArray<readonly [string, string]> = []): string {
  return `ghostprep.expect=${expectAddrs.join(',')}${ports.length ? ` ghostprep.expect-master=${ports.map(([p, m]) => `${p}:${m}`).join(',')}` : ''} no_timer_check systemd.default_timeout_start_sec=900 systemd.show_status=error modprobe.blacklist=${BLACKLIST.join(',')}`;
}

/** Shell run in the chroot of a master tree after its network config is written. */
const MASTER_NET_CUSTOMIZE = `${MASTER_CUSTOMIZE}
systemctl mask ${MASKED.join(' ')} 2>/dev/null
mkdir -p /etc/systemd/system/networking.service.d
printf '[Service]\\nTimeoutStartSec=15min\\n' > /etc/systemd/system/networking.service.d/ghostprep-boot-timeout.conf
`;

/**
 * ifupdown-pre.service (the eni master) holds the network back until udev has settled, with
 * `udevadm settle` (120 s) in a unit of TimeoutSec=180: under TCG on a busy host, the coldplug
 * of ten NICs can take longer, and the unit then fails. The same command with room to wait.
 */
const IFUPDOWN_PRE_DROPIN = `[Service]
TimeoutStartSec=15min
ExecStart=
ExecStart=/bin/sh -c 'if [ "$CONFIGURE_INTERFACES" != "no" ] && [ -n "$(ifquery --read-environment --list --exclude=lo)" ] && [ -x /bin/udevadm ]; then udevadm settle --timeout=840; fi'
`;

export interface NetPackages {
  readonly stack: Stack;
  /** The debootstrap tree with the stack's packages (cached); copy it, then makeMaster(). */
  readonly rootfs: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly dir: string;
  readonly timings: Record<string, number>;
  readonly cached: boolean;
}

const packagePromises = new Map<Stack, Promise<NetPackages>>();

/** The stack's package tree, built once and cached under .cache/boot/netpkgs-STACK-HASH. */
export function buildNetPackages(stack: Stack, log: Log = defaultLog): Promise<NetPackages> {
  let p = packagePromises.get(stack);
  if (!p) {
    p = buildNetPackagesUncached(stack, log).catch((e: unknown) => { packagePromises.delete(stack); throw e; });
    packagePromises.set(stack, p);
  }
  return p;
}

async function buildNetPackagesUncached(stack: Stack, log: Log): Promise<NetPackages> {
  const base = await buildDebianBase(log); // the debootstrap tree, and the kernel and initrd every master boots
  const r = RECIPES[stack];
  const recipeHash = hash(JSON.stringify({ v: 1, DEBOOTSTRAP_HASH, stack, install: r.install, purge: r.purge, enable: r.enable, POLICY_RC_D }));
  const dir = path.join(BOOT_CACHE, `netpkgs-${stack}-${recipeHash}`);
  const result = (cached: boolean): NetPackages => ({
    stack, rootfs: path.join(dir, 'rootfs'), kernel: base.kernel, initrd: base.initrd, dir, cached,
    timings: JSON.parse(readFileSync(path.join(dir, 'timings.json'), 'utf8')) as Record<string, number>,
  });
  if (existsSync(path.join(dir, 'timings.json'))) { log(`${stack} package tree cached: ${dir}`); return result(true); }
  return withBuildLock(log, async () => {
    if (existsSync(path.join(dir, 'timings.json'))) return result(true);
    if (process.getuid?.() !== 0) throw new Error('building the network masters needs root (chroot, apt-get, file owners)');
    removeStaleBuilds();
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const root = path.join(work, 'rootfs');
    const timings: Record<string, number> = {};
    try {
      log(`${stack} package tree: copy of the debootstrap tree + apt-get install ${r.install.join(' ') || '(nothing)'}${r.purge.length ? `, purge ${r.purge.join(' ')}` : ''}`);
      await timed(timings, 'copy', () => copyTree(debootstrapRootfs(), root));
      await timed(timings, 'apt', async () => {
        writeFileSync(path.join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
        writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), POLICY_RC_D, { mode: 0o755 });
        await execa('chroot', [root, '/bin/sh', '-c', installScript(r)], { all: true, env: CHROOT_ENV }).catch(fail(`apt-get in the ${stack} package tree`));
      });
      writeFileSync(path.join(work, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
      removeOtherEntries(`netpkgs-${stack}-`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(work, dir);
    } catch (e) {
      rmSync(work, { recursive: true, force: true });
      throw e;
    }
    log(`${stack} package tree built: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}`);
    return result(false);
  }, `.build-lock-net-${stack}`);
}

/**
 * Make a copy of the package tree into the stack's master (seconds, so not cached): its own
 * network configs (bound to ens3, and matching en*), hostname `master`, its machine-id and host keys, the report
 * unit, the units a test boot does not need masked.
 */
export async function makeMaster(tree: string, stack: Stack): Promise<void> {
  for (const f of RECIPES[stack].master) {
    mkdirSync(path.dirname(path.join(tree, f.path)), { recursive: true });
    writeFileSync(path.join(tree, f.path), f.content, { mode: f.mode });
  }
  mkdirSync(path.join(tree, 'usr/local/sbin'), { recursive: true });
  writeFileSync(path.join(tree, 'usr/local/sbin/ghostprep-boot-report'), NET_REPORT_SCRIPT, { mode: 0o755 });
  writeFileSync(path.join(tree, 'etc/systemd/system/ghostprep-boot-report.service'), NET_REPORT_UNIT, { mode: 0o644 });
  if (existsSync(path.join(tree, 'lib/systemd/system/ifupdown-pre.service'))) {
    mkdirSync(path.join(tree, 'etc/systemd/system/ifupdown-pre.service.d'), { recursive: true });
    writeFileSync(path.join(tree, 'etc/systemd/system/ifupdown-pre.service.d/ghostprep-boot-timeout.conf'), IFUPDOWN_PRE_DROPIN, { mode: 0o644 });
  }
  await execa('chroot', [tree, '/bin/sh', '-c', MASTER_NET_CUSTOMIZE], { all: true, env: CHROOT_ENV }).catch(fail(`customizing the ${stack} master`));
}

// ---------------------------------------------------------------- what the guest reports

interface IpLink {
  ifname: string; address?: string; permaddr?: string; mtu: number; master?: string; link?: string; operstate?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string };
}
interface IpAddr { ifname: string; addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string; dynamic?: boolean }> }
interface IpRoute { dst: string; gateway?: string; dev: string; metric?: number; protocol?: string }

/** The network of a booted guest, from its report. */
export class GuestNet {
  readonly links: IpLink[];
  readonly addrs: IpAddr[];
  readonly routes4: IpRoute[];
  readonly routes6: IpRoute[];
  readonly failed: string[];
  readonly waited: string;

  constructor(readonly console: string, readonly bootS: number) {
    const lines = console.replace(/\r/g, '').split('\n').map((l) => /GHOSTPREP-BOOT ([a-z0-9-]+)=(.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m);
    const begin = lines.map((m) => m[0]).lastIndexOf('GHOSTPREP-BOOT begin');
    const body = begin >= 0 ? lines.slice(begin) : lines;
    const joined = (key: string): string => body.filter((m) => m[1] === key).map((m) => m[2]).join('');
    const json = <T>(key: string): T => {
      const text = joined(key);
      try { return JSON.parse(text) as T; } catch { throw new Error(`the guest's ${key} is not JSON: ${text.slice(0, 300)}`); }
    };
    this.links = json<IpLink[]>('json-link').filter((l) => l.ifname !== 'lo');
    this.addrs = json<IpAddr[]>('json-addr');
    this.routes4 = json<IpRoute[]>('json-route4');
    this.routes6 = json<IpRoute[]>('json-route6');
    this.failed = body.filter((m) => m[1] === 'failed').map((m) => m[2]!.trim());
    this.waited = body.find((m) => m[1] === 'waited')?.[2] ?? '';
  }

  link(name: string): IpLink {
    const l = this.links.find((x) => x.ifname === name);
    expect(l, `no interface ${name} in the guest (it has ${this.links.map((x) => x.ifname).join(', ')})`).to.not.equal(undefined);
    return l!;
  }

  /** Global addresses (CIDR) of an interface, sorted. */
  global(name: string): string[] {
    return (this.addrs.find((a) => a.ifname === name)?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort();
  }

  /** Every global address of the guest, as `ifname address/prefix`. */
  allGlobal(): string[] {
    return this.addrs.flatMap((a) => this.global(a.ifname).map((x) => `${a.ifname} ${x}`)).sort();
  }

  /** The interface's MAC as the hardware has it (a bond member shows the bond's MAC as its address). */
  hwaddr(name: string): string {
    const l = this.link(name);
    return (l.permaddr ?? l.address ?? '').toLowerCase();
  }

  kind(name: string): string | undefined { return this.link(name).linkinfo?.info_kind; }
  data(name: string): Record<string, unknown> { return this.link(name).linkinfo?.info_data ?? {}; }

  route(family: 4 | 6, dst: string, dev: string): IpRoute | undefined {
    return (family === 4 ? this.routes4 : this.routes6).find((r) => r.dst === dst && r.dev === dev);
  }
}

// ---------------------------------------------------------------- the cases

interface Nic { readonly slot: number; readonly mac: string }
interface NetCase {
  readonly id: string;
  readonly title: string;
  readonly nics: readonly Nic[];
  /** Network config v2 sections this case adds to the machine's network. */
  readonly network: { ethernets?: Record<string, unknown>; bonds?: Record<string, unknown>; vlans?: Record<string, unknown>; bridges?: Record<string, unknown> };
  /** Addresses the guest must show (without prefix): the report waits for them. */
  readonly waitFor: readonly string[];
  /**
   * Ports and the bond or bridge each must be enslaved to: the report waits for them too (an
   * address on a bond or bridge can be up before its ports have joined it).
   */
  readonly ports?: ReadonlyArray<readonly [string, string]>;
  /** Interface names this case brings (the guest must have exactly the union). */
  readonly names: readonly string[];
  readonly check: (g: GuestNet) => void;
}
export interface NetBoot { readonly id: string; readonly cases: readonly NetCase[] }

const mac = (n: number): string => `52:54:00:6e:00:${n.toString(16).padStart(2, '0')}`;

/** Interface `name` exists, has this hardware MAC, and exactly these global addresses. */
function hasAddrs(g: GuestNet, name: string, addrs: string[]): void {
  expect(g.global(name), `global addresses of ${name}`).to.deep.equal([...addrs].sort());
}

const STATIC: NetCase = {
  id: 'static-v4v6', title: 'static IPv4 + IPv6 with default routes on a NIC matched by MAC and renamed',
  nics: [{ slot: 3, mac: mac(0x11) }],
  network: { ethernets: { lan: { match: { macaddress: mac(0x11) }, 'set-name': 'static0', addresses: ['192.168.11.10/24', 'fd00:11::10/64'], routes: [{ to: 'default', via: '192.168.11.1' }, { to: 'default', via: 'fd00:11::1' }] } } },
  waitFor: ['192.168.11.10', 'fd00:11::10'], names: ['static0'],
  check: (g) => {
    expect(g.hwaddr('static0')).to.equal(mac(0x11));
    hasAddrs(g, 'static0', ['192.168.11.10/24', 'fd00:11::10/64']);
    expect(g.route(4, 'default', 'static0')?.gateway, 'IPv4 default route via static0').to.equal('192.168.11.1');
    expect(g.route(6, 'default', 'static0')?.gateway, 'IPv6 default route via static0').to.equal('fd00:11::1');
    expect(g.routes4.filter((r) => r.dst === 'default').map((r) => r.dev), 'IPv4 default routes').to.deep.equal(['static0']);
  },
};

const DHCP_STATIC: NetCase = {
  id: 'dhcp+static', title: 'DHCP on one NIC and a static address on a second',
  nics: [{ slot: 6, mac: mac(0x21) }, { slot: 7, mac: mac(0x22) }],
  network: { ethernets: {
    dyn: { match: { macaddress: mac(0x21) }, 'set-name': 'dhcp0', dhcp4: true },
    fix: { match: { macaddress: mac(0x22) }, 'set-name': 'fixed0', addresses: ['192.168.12.10/24'] },
  } },
  waitFor: ['10.0.2.15', '192.168.12.10'], names: ['dhcp0', 'fixed0'],
  check: (g) => {
    expect(g.hwaddr('dhcp0')).to.equal(mac(0x21));
    expect(g.hwaddr('fixed0')).to.equal(mac(0x22));
    hasAddrs(g, 'dhcp0', ['10.0.2.15/24']);
    hasAddrs(g, 'fixed0', ['192.168.12.10/24']);
  },
};

const BOND_VLAN: NetCase = {
  id: 'bond+vlan', title: 'active-backup bond of two NICs with a VLAN on it carrying a static address',
  nics: [{ slot: 8, mac: mac(0x31) }, { slot: 9, mac: mac(0x32) }],
  network: {
    ethernets: {
      abm0: { match: { macaddress: mac(0x31) }, 'set-name': 'abm0' },
      abm1: { match: { macaddress: mac(0x32) }, 'set-name': 'abm1' },
    },
    bonds: { bond0: { interfaces: ['abm0', 'abm1'], parameters: { mode: 'active-backup', 'mii-monitor-interval': 100, primary: 'abm0' } } },
    vlans: { 'bond0.30': { id: 30, link: 'bond0', addresses: ['192.168.30.10/24'] } },
  },
  waitFor: ['192.168.30.10'], ports: [['abm0', 'bond0'], ['abm1', 'bond0']], names: ['abm0', 'abm1', 'bond0', 'bond0.30'],
  check: (g) => {
    expect(g.kind('bond0'), 'bond0 kind').to.equal('bond');
    expect(g.data('bond0').mode, 'bond0 mode').to.equal('active-backup');
    for (const [m, n] of [['abm0', 0x31], ['abm1', 0x32]] as const) {
      expect(g.link(m).master, `${m} enslaved to`).to.equal('bond0');
      expect(g.hwaddr(m), `${m} hardware MAC`).to.equal(mac(n));
      hasAddrs(g, m, []);
    }
    expect(g.kind('bond0.30'), 'bond0.30 kind').to.equal('vlan');
    expect(g.data('bond0.30').id, 'VLAN id').to.equal(30);
    expect(g.link('bond0.30').link, 'VLAN link').to.equal('bond0');
    hasAddrs(g, 'bond0', []);
    hasAddrs(g, 'bond0.30', ['192.168.30.10/24']);
  },
};

const VLAN_ON_NIC: NetCase = {
  id: 'vlan-on-renamed-nic', title: 'a VLAN carrying an address directly on a renamed NIC',
  nics: [{ slot: 10, mac: mac(0x41) }],
  network: {
    ethernets: { trunk: { match: { macaddress: mac(0x41) }, 'set-name': 'trunk0' } },
    vlans: { 'trunk0.40': { id: 40, link: 'trunk', addresses: ['192.168.40.10/24'] } },
  },
  waitFor: ['192.168.40.10'], names: ['trunk0', 'trunk0.40'],
  check: (g) => {
    expect(g.hwaddr('trunk0')).to.equal(mac(0x41));
    expect(g.kind('trunk0.40'), 'trunk0.40 kind').to.equal('vlan');
    expect(g.data('trunk0.40').id, 'VLAN id').to.equal(40);
    expect(g.link('trunk0.40').link, 'VLAN link').to.equal('trunk0');
    hasAddrs(g, 'trunk0', []);
    hasAddrs(g, 'trunk0.40', ['192.168.40.10/24']);
  },
};

const BOND_BY_NAME: NetCase = {
  id: 'bond-ids≠names+wildcard-master', title: "a bond whose member IDs differ from their interface names, on a master whose own config matches en*",
  nics: [{ slot: 11, mac: mac(0x51) }, { slot: 12, mac: mac(0x52) }],
  network: {
    ethernets: { 'port-a': { match: { name: 'ens11' } }, 'port-b': { match: { name: 'ens12' } } },
    bonds: { bond1: { interfaces: ['port-a', 'port-b'], parameters: { mode: 'active-backup', 'mii-monitor-interval': 100 }, addresses: ['192.168.60.10/24'] } },
  },
  waitFor: ['192.168.60.10'], ports: [['ens11', 'bond1'], ['ens12', 'bond1']], names: ['ens11', 'ens12', 'bond1'],
  check: (g) => {
    expect(g.kind('bond1'), 'bond1 kind').to.equal('bond');
    expect(g.data('bond1').mode, 'bond1 mode').to.equal('active-backup');
    for (const [m, n] of [['ens11', 0x51], ['ens12', 0x52]] as const) {
      expect(g.link(m).master, `${m} enslaved to`).to.equal('bond1');
      expect(g.hwaddr(m), `${m} hardware MAC`).to.equal(mac(n));
      hasAddrs(g, m, []);
    }
    hasAddrs(g, 'bond1', ['192.168.60.10/24']);
  },
};

const BRIDGE: NetCase = {
  id: 'bridge-stp-off', title: 'a bridge over one NIC with STP off',
  nics: [{ slot: 13, mac: mac(0x61) }],
  network: {
    ethernets: { uplink: { match: { macaddress: mac(0x61) }, 'set-name': 'brport0' } },
    bridges: { br0: { interfaces: ['uplink'], parameters: { stp: false }, addresses: ['192.168.70.10/24'] } },
  },
  waitFor: ['192.168.70.10'], ports: [['brport0', 'br0']], names: ['brport0', 'br0'],
  check: (g) => {
    expect(g.kind('br0'), 'br0 kind').to.equal('bridge');
    expect(g.data('br0').stp_state, 'br0 stp_state').to.equal(0);
    expect(g.link('brport0').master, 'brport0 port of').to.equal('br0');
    expect(g.hwaddr('brport0')).to.equal(mac(0x61));
    hasAddrs(g, 'brport0', []);
    hasAddrs(g, 'br0', ['192.168.70.10/24']);
  },
};

const JUMBO: NetCase = {
  id: 'mtu9000+route-metric', title: 'MTU 9000 and an extra route with a metric',
  nics: [{ slot: 14, mac: mac(0x71) }],
  network: { ethernets: { jumbo: { match: { macaddress: mac(0x71) }, 'set-name': 'jumbo0', mtu: 9000, addresses: ['192.168.80.10/24'], routes: [{ to: '192.168.180.0/24', via: '192.168.80.1', metric: 50 }] } } },
  waitFor: ['192.168.80.10'], names: ['jumbo0'],
  check: (g) => {
    expect(g.hwaddr('jumbo0')).to.equal(mac(0x71));
    expect(g.link('jumbo0').mtu, 'jumbo0 MTU').to.equal(9000);
    hasAddrs(g, 'jumbo0', ['192.168.80.10/24']);
    const r = g.route(4, '192.168.180.0/24', 'jumbo0');
    expect(r, 'route to 192.168.180.0/24 on jumbo0').to.not.equal(undefined);
    expect({ gateway: r!.gateway, metric: r!.metric }).to.deep.equal({ gateway: '192.168.80.1', metric: 50 });
  },
};

/**
 * One boot per stack for the whole matrix: every case has NICs of its own (PCI slots 3 and
 * 6-14, eleven NICs), interface names and subnets of its own, so the cases cannot interfere,
 * and each is checked on its own interfaces. The master carries both of its own configs, the
 * one bound to ens3 (slot 3, renamed static0 by the clone) and the one matching every `en*`
 * interface (the by-name bond members ens11/ens12 keep their kernel names, which it matches):
 * `nothing-extra` then shows that neither brought anything up. A boot per master config would
 * prove nothing more: ghostprep judges each master file on its own, and no case shares a NIC.
 */
export const NET_BOOTS: readonly NetBoot[] = [
  { id: 'b1', cases: [STATIC, DHCP_STATIC, BOND_VLAN, VLAN_ON_NIC, BOND_BY_NAME, BRIDGE, JUMBO] },
];

/** The guest has exactly the interfaces and global addresses the boot's cases ask for: nothing extra came up. */
export const NOTHING_EXTRA = 'nothing-extra';

function checkNothingExtra(boot: NetBoot, g: GuestNet): void {
  const names = boot.cases.flatMap((c) => c.names).sort();
  expect(g.links.map((l) => l.ifname).sort(), 'interfaces of the guest').to.deep.equal(names);
  // every global address belongs to one the cases asked for (by address, whatever the interface)
  const wanted = new Set(boot.cases.flatMap((c) => c.waitFor));
  const extra = g.allGlobal().filter((a) => !wanted.has(a.split(' ')[1]!.replace(/\/\d+$/, '')));
  expect(extra, 'global addresses nobody asked for (the master DHCP config?)').to.deep.equal([]);
  const dhcpLeases = g.allGlobal().filter((a) => a.includes(' 10.0.2.15/'));
  expect(dhcpLeases.length, `DHCP leases: ${dhcpLeases.join(', ')}`).to.equal(boot.cases.filter((c) => c.waitFor.includes('10.0.2.15')).length);
  expect(g.failed, 'failed units').to.deep.equal([]);
}

// ---------------------------------------------------------------- the results table

/** Where each spec appends its results (one JSON object a line), so the last one can print the whole matrix. */
export const MATRIX_FILE = process.env.GHOSTPREP_BOOT_MATRIX ?? path.join(os.tmpdir(), 'ghostprep-boot-matrix.jsonl');
interface MatrixRow { stack: string; boot: string; case: string; pass: boolean; bootS: number | null; at: number }

function record(row: Omit<MatrixRow, 'at'>): void {
  appendFileSync(MATRIX_FILE, JSON.stringify({ ...row, at: Date.now() }) + '\n');
}

/** The matrix (stack x case) of the last 3 hours' results, newest result per cell. */
export function matrixTable(): string {
  let rows: MatrixRow[] = [];
  try { rows = readFileSync(MATRIX_FILE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as MatrixRow); } catch { return '(no results yet)'; }
  rows = rows.filter((r) => r.at > Date.now() - 3 * 3600_000);
  const cells = new Map<string, MatrixRow>();
  for (const r of rows) cells.set(`${r.stack}\t${r.case}`, r);
  const cases = [...NET_BOOTS.flatMap((b) => [...b.cases.map((c) => c.id), `${NOTHING_EXTRA} (${b.id})`])];
  const stacks = STACKS.filter((s) => rows.some((r) => r.stack === s));
  const width = Math.max(...cases.map((c) => c.length));
  const head = `${'case'.padEnd(width)} | ${stacks.map((s) => s.padEnd(16)).join(' | ')}`;
  const lines = [head, '-'.repeat(head.length)];
  for (const c of cases) {
    lines.push(`${c.padEnd(width)} | ${stacks.map((s) => {
      const r = cells.get(`${s}\t${c}`);
      return (r ? `${r.pass ? 'PASS' : 'FAIL'}${r.bootS !== null ? ` ${r.bootS.toFixed(0)} s` : ''}` : '-').padEnd(16);
    }).join(' | ')}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- the spec of one stack

const CLI = path.join(REPO, 'dist/src/cli/main.js');

function machineName(stack: Stack, boot: NetBoot): string {
  return `nb-${stack === 'network-manager' ? 'nm' : stack}-${boot.id}`;
}

export function inventoryFor(stack: Stack): string {
  const machines = NET_BOOTS.map((b) => {
    const network: Record<string, Record<string, unknown>> = {};
    for (const c of b.cases) for (const [section, defs] of Object.entries(c.network)) Object.assign(network[section] ??= {}, defs);
    return { name: machineName(stack, b), network: { version: 2, ...network } };
  });
  return JSON.stringify({ defaults: { profile: 'netboot' }, machines }, null, 1) + '\n';
}

export const NETBOOT_PROFILE = `profile: netboot
description: network boot matrix clone
hostname: "{{machine.name}}"
machineId: generate
networkRenderer: auto
`;

async function ghostprep(args: string[]): Promise<string> {
  const r = await execa('node', [CLI, ...args], { all: true, reject: false, env: { LIBGUESTFS_BACKEND_SETTINGS: process.env.LIBGUESTFS_BACKEND_SETTINGS ?? 'force_tcg' } });
  if (r.exitCode !== 0) throw new Error(`ghostprep ${args.join(' ')} exited ${r.exitCode}:\n${r.all}`);
  return r.all ?? '';
}

/**
 * The mocha suite of one stack: build (or find) its master, make one clone tree per boot,
 * `ghostprep apply` it, make its disk image, boot it, then one test per case and per boot
 * ("nothing extra").
 */
export function describeStack(stack: Stack): void {
  describe(`boot matrix: ${stack}`, function () {
    this.timeout(45 * 60_000);
    let scratch: string | undefined;
    const guests = new Map<string, GuestNet | Error>();
    const recorded = new Set<string>();

    before(async function () {
      if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); this.skip(); }
      const missing = await bootPrerequisites();
      if (missing) throw new Error(`boot tests cannot run: ${missing} (set GHOSTPREP_SKIP_BOOT=1 to skip them)`);
      const master = await buildNetPackages(stack);
      scratch = bootScratch(`net-${stack}`);
      const profile = path.join(scratch, 'netboot.yaml');
      const inventory = path.join(scratch, 'inventory.yaml');
      writeFileSync(profile, NETBOOT_PROFILE);
      writeFileSync(inventory, inventoryFor(stack));
      for (const b of NET_BOOTS) {
        const tree = path.join(scratch, 'trees', machineName(stack, b));
        await copyTree(master.rootfs, tree);
        await makeMaster(tree, stack);
      }
      await ghostprep(['apply', '-p', profile, '-i', inventory, '--target', `rootfs:${scratch}/trees/{name}`, '--state', path.join(scratch, 'state'), '--report', path.join(scratch, 'report.json')]);
      mkdirSync(path.join(scratch, 'images'));
      for (const b of NET_BOOTS) {
        const name = machineName(stack, b);
        const tree = path.join(scratch, 'trees', name);
        expect(existsSync(path.join(tree, RECIPES[stack].rendered)), `${name}: ghostprep picked the ${stack} renderer (${RECIPES[stack].rendered})`).to.equal(true);
        await buildImageFromTree(tree, path.join(scratch, 'images', `${name}.qcow2`));
        if (!process.env.GHOSTPREP_BOOT_KEEP) rmSync(tree, { recursive: true, force: true });
      }
      const timeoutMs = Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 1_200_000;
      await Promise.all(NET_BOOTS.map(async (b) => {
        const name = machineName(stack, b);
        const t0 = Date.now();
        try {
          const report = await bootAndReport(path.join(scratch!, 'images', `${name}.qcow2`), {
            kernel: master.kernel, initrd: master.initrd, timeoutMs, consoleLog: path.join(scratch!, `${name}.console.log`),
            nics: b.cases.flatMap((c) => c.nics).sort((x, y) => x.slot - y.slot),
            append: matrixAppend(b.cases.flatMap((c) => c.waitFor), b.cases.flatMap((c) => c.ports ?? [])),
          });
          guests.set(b.id, new GuestNet(report.console, report.durationMs / 1000));
        } catch (e) {
          guests.set(b.id, e instanceof Error ? e : new Error(String(e)));
          defaultLog(`${name}: boot failed after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        }
      }));
    });

    const guest = (boot: NetBoot): GuestNet => {
      const g = guests.get(boot.id);
      if (g === undefined) throw new Error(`${boot.id} was not booted`);
      if (g instanceof Error) throw g;
      return g;
    };

    for (const boot of NET_BOOTS) {
      describe(`boot ${boot.id} (master configs bound to ens3 and matching en*)`, () => {
        for (const c of boot.cases) {
          it(`${c.id}: ${c.title}`, function () {
            const g = guest(boot);
            try {
              c.check(g);
            } catch (e) {
              (e as Error).message += `\n  guest waited: ${g.waited}\n  links: ${g.links.map((l) => `${l.ifname}(${l.linkinfo?.info_kind ?? 'eth'}${l.master ? `>${l.master}` : ''})`).join(' ')}\n  addresses: ${g.allGlobal().join(', ')}`;
              throw e;
            }
          });
        }
        it(`${NOTHING_EXTRA}: exactly the interfaces and addresses asked for, no failed units (the master's own config brought up nothing)`, () => {
          const g = guest(boot);
          try {
            checkNothingExtra(boot, g);
          } catch (e) {
            (e as Error).message += `\n  guest waited: ${g.waited}\n  addresses: ${g.allGlobal().join(', ')}`;
            throw e;
          }
        });
      });
    }

    afterEach(function () {
      const t = this.currentTest;
      if (!t) return;
      const boot = NET_BOOTS.find((b) => t.parent?.title.startsWith(`boot ${b.id} `));
      if (!boot) return;
      const id = t.title.startsWith(`${NOTHING_EXTRA}:`) ? `${NOTHING_EXTRA} (${boot.id})` : t.title.slice(0, t.title.indexOf(':'));
      const g = guests.get(boot.id);
      record({ stack, boot: boot.id, case: id, pass: t.state === 'passed', bootS: g instanceof GuestNet ? g.bootS : null });
      recorded.add(id);
    });

    after(function () {
      if (!SKIP_BOOT) {
        // cases that never ran (the build or apply failed) count as failures
        for (const b of NET_BOOTS) {
          for (const id of [...b.cases.map((c) => c.id), `${NOTHING_EXTRA} (${b.id})`]) {
            if (!recorded.has(id)) record({ stack, boot: b.id, case: id, pass: false, bootS: null });
          }
        }
        console.log(`\n      network boot matrix (${MATRIX_FILE}):\n${matrixTable().split('\n').map((l) => `      ${l}`).join('\n')}\n`);
      }
      if (scratch && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true });
    });
  });
}
