/**
 * The network renderer records: one record per format carries its
 * detection, rendering, stale rules, directories and manual row. These tests
 * hold the records to what the rest of the program relies on: the detection
 * walk follows the documented priority order, each record's stale rules stay
 * inside its own files (so walking the records in any order gives the same
 * plan), and the manual's renderer table says what the renderers really write.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryGuest } from '../../src/backends/memory.js';
import { findStale, interpret, renderWith, selectRenderer } from '../../src/network/index.js';
import { renameFiles } from '../../src/network/renderers/common.js';
import { claimsOf } from '../../src/network/renderers/guest.js';
import type { Renderer } from '../../src/core/network.js';
import { RendererTable, RENDERERS } from '../../src/network/renderers/index.js';
import type { FileChange } from '../../src/core/file-change.js';
import { DISTROS, ROOT, VARIANTS, caseNames, loadCase } from '../network/helpers.js';

const REPO = ROOT;
const NETWORK_MD = readFileSync(path.join(REPO, 'docs/network.md'), 'utf8');

/** The detection order docs/network.md ("Which renderer") promises. */
const DOCUMENTED_ORDER = ['netplan', 'network-manager', 'networkd', 'ifcfg', 'eni'];

const wants = (unit: string) => ({ [`/etc/systemd/system/multi-user.target.wants/${unit}`]: { symlink: `/lib/systemd/system/${unit}` } });

/** Per renderer: guest files that make its detection succeed. */
const MARKERS: Record<string, Record<string, unknown>> = {
  netplan: { '/usr/sbin/netplan': '' },
  'network-manager': wants('NetworkManager.service'),
  networkd: wants('systemd-networkd.service'),
  ifcfg: wants('wicked.service'),
  eni: { '/etc/network/interfaces': '', '/sbin/ifup': '' },
};

/** Guest files that look like a format but are read by nothing: they must not decide. */
const DECOYS: Record<string, unknown>[] = [
  { '/etc/netplan/01.yaml': 'network: {version: 2}\n' },
  { '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n' },
  { '/etc/sysconfig/network-scripts/ifcfg-eth0': 'DEVICE=eth0\n' },
  { '/usr/lib/systemd/system/wicked.service': '' },
  { '/lib/systemd/system/NetworkManager.service': '' },
  { '/lib/systemd/system/systemd-networkd.service': '' },
];

const within = (r: Renderer, p: string): boolean => r.dirs.some((d) => p.startsWith(`${d}/`)) || (r.files ?? []).includes(p);

describe('renderer records: the registry', () => {
  it('walks detection in the documented priority order', () => {
    expect(RENDERERS.byPriority().map((r) => r.name)).to.deep.equal(DOCUMENTED_ORDER);
  });

  it('the manual lists the detection steps in the records\' order', () => {
    const section = /## Which renderer\n([\s\S]*?)\n## /.exec(NETWORK_MD)![1]!;
    const steps = section.split(/^\d+\. /m).slice(1).filter((s) => !s.startsWith('family default'));
    expect(steps.map((s) => /→ `([a-z-]+)`/.exec(s)?.[1])).to.deep.equal(RENDERERS.byPriority().map((r) => r.name));
  });

  it('refuses two records at one detection priority, naming both', () => {
    const eni = RENDERERS.get('eni')!;
    const twin: Renderer = { ...eni, name: 'eni-twin' };
    expect(() => new RendererTable([eni, twin])).to.throw('network renderers eni and eni-twin have the same detection priority 50');
  });

  it('lists names sorted, whatever the registration order', () => {
    const all = RENDERERS.all();
    fc.assert(fc.property(fc.shuffledSubarray(all, { minLength: 1 }), (some) => {
      const names = new RendererTable(some).names();
      expect(names).to.deep.equal(some.map((r) => r.name).sort());
    }));
  });

  it('no two records own one directory or file', () => {
    const owned = RENDERERS.all().flatMap((r) => [...r.dirs, ...(r.files ?? [])].map((p) => ({ p, r: r.name })));
    for (const a of owned) {
      for (const b of owned) {
        if (a === b || a.r === b.r) continue;
        expect(a.p === b.p || a.p.startsWith(`${b.p}/`), `${a.r}'s ${a.p} lies in ${b.r}'s ${b.p}`).to.equal(false);
      }
    }
  });
});

describe('renderer records: detection', () => {
  it('the first record in priority order whose format the guest reads wins; decoys decide nothing', async () => {
    await fc.assert(fc.asyncProperty(
      fc.subarray(DOCUMENTED_ORDER),
      fc.subarray(DECOYS),
      async (present, decoys) => {
        const files = Object.assign({}, ...decoys, ...present.map((n) => MARKERS[n]!));
        const sel = await selectRenderer(new MemoryGuest(files), DISTROS.arch);
        const expected = DOCUMENTED_ORDER.find((n) => present.includes(n));
        if (expected) expect(sel.name).to.equal(expected);
        else expect(sel).to.deep.equal({ name: 'networkd', reason: 'family default for arch (arch)' });
      },
    ), { numRuns: 60 });
  });

  it('each record reports what it searched; a failed selection lists every record\'s search', async () => {
    const guest = new MemoryGuest({});
    const searched = (await Promise.all(RENDERERS.byPriority().map((r) => r.detect(guest)))).flatMap((d) => {
      expect(d.reason).to.equal(undefined);
      expect(d.searched).to.not.be.empty;
      return d.searched;
    });
    try {
      await selectRenderer(guest, DISTROS.unknown);
      expect.fail('should throw');
    } catch (err) {
      expect((err as Error).message).to.contain(`searched ${searched.join(', ')}; `);
    }
  });
});

describe('renderer records: stale rules', () => {
  /** A master holding conflicting (and harmless) files of every format, and files of an earlier run. */
  const MASTER: Record<string, string> = {
    '/etc/NetworkManager/system-connections/Wired.nmconnection': '[connection]\nid=Wired\ntype=ethernet\n[ethernet]\nmac-address=52:54:00:12:34:56\n',
    '/etc/NetworkManager/system-connections/wifi.nmconnection': '[connection]\nid=home\ntype=wifi\ninterface-name=wlan0\n',
    '/etc/sysconfig/network-scripts/ifcfg-eth0': 'DEVICE=eth0\nHWADDR="52:54:00:12:34:56"\n',
    '/etc/sysconfig/network-scripts/route-eth0': '10.1.0.0/16 via 10.0.0.1\n',
    '/etc/sysconfig/network-scripts/route-lan': '10.2.0.0/16 via 10.0.0.1\n',
    '/etc/sysconfig/network/ifcfg-lan': "BOOTPROTO='dhcp'\n",
    '/etc/netplan/50-cloud-init.yaml': 'network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true, match: {macaddress: "52:54:00:12:34:56"}}\n    lan: {dhcp4: true}\n    other: {dhcp4: true}\n',
    '/etc/systemd/network/05-all.network': '[Match]\nName=e*\n[Network]\nDHCP=yes\n',
    '/etc/systemd/network/20-mac.link': '[Match]\nMACAddress=52:54:00:12:34:56\n[Link]\nName=eth0\n',
    '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n\nauto lan\niface lan inet dhcp\n',
    '/etc/network/interfaces.d/eth0': 'auto eth0\niface eth0 inet dhcp\n',
    '/etc/udev/rules.d/70-persistent-net.rules': 'SUBSYSTEM=="net", NAME="eth0"\n',
    '/etc/systemd/network/10-ghostprep-old.network': '# Written by ghostprep from the profile\'s network configuration; local changes are overwritten on the next apply.\n[Match]\nName=old\n',
    '/etc/sysconfig/network-scripts/ifcfg-old': '# Written by ghostprep from the profile\'s network configuration; local changes are overwritten on the next apply.\nDEVICE=old\n',
    '/etc/cloud/cloud.cfg': 'datasource_list: [NoCloud]\n',
  };
  const CONFIGS = [
    { version: 2, ethernets: { lan: { match: { macaddress: '52:54:00:aa:bb:01' }, 'set-name': 'lan', dhcp4: true } } },
    { version: 2, ethernets: { eth0: { dhcp4: true }, eth1: { dhcp4: true } } },
    { version: 2, ethernets: { ens3: { dhcp4: true } }, bonds: { bond0: { interfaces: ['ens3'], dhcp4: true } } },
  ];

  it('each record changes only its own files, so no path is named by two records and the walk order does not matter', async () => {
    await fc.assert(fc.asyncProperty(
      fc.subarray(Object.keys(MASTER)),
      fc.constantFrom(...CONFIGS),
      async (paths, config) => {
        const guest = new MemoryGuest(Object.fromEntries(paths.map((p) => [p, MASTER[p]!])));
        const model = interpret(config);
        const claims = claimsOf(model, []);
        const seen = new Map<string, string>();
        for (const r of RENDERERS.all()) {
          for (const change of await r.stale(guest, claims)) {
            expect(within(r, change.path), `${r.name} changes ${change.path}, outside its own files`).to.equal(true);
            expect(seen.get(change.path), `${change.path} changed by ${seen.get(change.path)} and ${r.name}`).to.equal(undefined);
            seen.set(change.path, r.name);
          }
        }
        // findStale keeps every record's change as the record made it
        const all = await findStale(guest, model, []);
        const byPath = new Map(all.map((c: FileChange) => [c.path, c]));
        for (const r of RENDERERS.all()) {
          for (const change of await r.stale(guest, claims)) expect(byPath.get(change.path)).to.deep.equal(change);
        }
        expect(all.map((c) => c.path)).to.deep.equal([...byPath.keys()].sort());
      },
    ), { numRuns: 40 });
  });

  it('networkd\'s rule takes `Name=eth[!0]` as fnmatch does: it fights for eth1, not for eth0', async () => {
    const guest = new MemoryGuest({ '/etc/systemd/network/05-not-eth0.network': '[Match]\nName=eth[!0]\n[Network]\nDHCP=yes\n' });
    const networkd = RENDERERS.get('networkd')!;
    const forEth1 = await networkd.stale(guest, claimsOf(interpret({ version: 2, ethernets: { eth1: { dhcp4: true } } }), []));
    expect(forEth1.map((c) => `${c.op} ${c.path}: ${c.reason}`)).to.deep.equal([
      'delete /etc/systemd/network/05-not-eth0.network: master network file matching eth[!0] takes precedence over ours for eth1',
    ]);
    expect(await networkd.stale(guest, claimsOf(interpret({ version: 2, ethernets: { eth0: { dhcp4: true } } }), []))).to.deep.equal([]);
  });
});

describe('renderer records: the manual', () => {
  const block = /<!-- renderers -->\n([\s\S]*?)<!-- \/renderers -->/.exec(NETWORK_MD);

  it('docs/network.md has one generated row per record (per flavour), in detection order', () => {
    expect(block, 'docs/network.md has a renderers block').to.not.equal(null);
    const rows = [...block![1]!.matchAll(/^\| `([a-z-]+)`(?: \(([^)]+)\))? \|/gm)].map((m) => (m[2] ? `${m[1]} (${m[2]})` : m[1]));
    expect(rows).to.deep.equal(RENDERERS.byPriority().flatMap((r) => r.docs.map((d) => (d.flavour ? `${r.name} (${d.flavour})` : r.name))));
  });

  it('every file a renderer writes for the golden cases is one its manual row names, with that mode', () => {
    const pattern = (doc: string): RegExp => new RegExp(`^${doc.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/NAME/g, '[^/]+')}$`);
    let checked = 0;
    for (const name of caseNames()) {
      const model = interpret(loadCase(name));
      for (const v of VARIANTS) {
        let files;
        try {
          files = renderWith(v.renderer, model, v.distro);
        } catch {
          continue; // a case this renderer refuses (golden ERROR file)
        }
        const r = RENDERERS.get(v.renderer)!;
        // renames for renderers that cannot rename are shared .link / udev files, documented apart from the table
        const shared = r.name === 'networkd' ? new Set<string>() : new Set(renameFiles(model, v.distro).map((f) => f.path));
        for (const f of files) {
          if (f.kind !== 'file' || shared.has(f.path)) continue;
          const doc = r.docs.find((d) => d.files.some((p) => pattern(p).test(f.path)));
          expect(doc, `${v.dir}/${name}: ${f.path} is not in ${r.name}'s manual row`).to.not.equal(undefined);
          expect(f.mode.toString(8), `${v.dir}/${name}: mode of ${f.path}`).to.equal(doc!.mode.toString(8));
          checked++;
        }
      }
    }
    expect(checked).to.be.greaterThan(50);
  });
});
