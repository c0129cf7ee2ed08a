/**
 * One rule for every format: a master's name match (literal or glob) that
 * covers one of the clone's interfaces is neutralized, whichever format it
 * is in and whichever renderer was chosen; a match covering none is kept.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryGuest } from '../../src/backends/memory.js';
import { findStale, interpret } from '../../src/network/index.js';
import type { FileChange } from '../../src/core/file-change.js';

const summary = (changes: FileChange[]) => changes.map((c) => `${c.op} ${c.path}: ${c.reason}`);

/** The master's files, one per format, each matching `pattern`. */
function masterFiles(pattern: string): Record<string, string | { content: string; mode: number }> {
  return {
    '/etc/netplan/50-cloud-init.yaml': { content: `network:\n  version: 2\n  ethernets:\n    all-en:\n      match: {name: "${pattern}"}\n      dhcp4: true\n`, mode: 0o600 },
    '/etc/systemd/network/05-wired.network': `[Match]\nName=${pattern}\n[Network]\nDHCP=yes\n`,
    '/etc/NetworkManager/system-connections/Wired.nmconnection': `[connection]\nid=Wired\ntype=ethernet\n[match]\ninterface-name=${pattern}\n`,
    '/etc/network/interfaces': `auto lo\niface lo inet loopback\n\nmapping ${pattern}\n    script /usr/local/sbin/map-scheme\n`,
  };
}

describe('findStale: master matches that cover our interfaces', () => {
  it('a netplan glob over bond members whose IDs differ from their names is removed (first match wins in netplan)', async () => {
    const model = interpret({
      version: 2,
      ethernets: { m1: { match: { name: 'eno1' } }, m2: { match: { name: 'eno2' } } },
      bonds: { bond0: { interfaces: ['m1', 'm2'], addresses: ['10.0.0.5/24'] } },
    });
    const g = new MemoryGuest({ '/etc/netplan/50-cloud-init.yaml': { content: 'network:\n  version: 2\n  ethernets:\n    all-en:\n      match: {name: "en*"}\n      dhcp4: true\n', mode: 0o600 } });
    expect(summary(await findStale(g, model, ['/etc/netplan/50-ghostprep.yaml']))).to.deep.equal([
      'delete /etc/netplan/50-cloud-init.yaml: master netplan ethernets/all-en matching en* also takes interface eno1',
    ]);
  });

  it('every format\'s master match covering one of our names goes; one covering none stays', async () => {
    const name = fc.stringMatching(/^en[a-z0-9]{1,6}$/);
    await fc.assert(fc.asyncProperty(name, fc.integer({ min: 1, max: 3 }), async (ours, cut) => {
      const model = interpret({ version: 2, ethernets: { lan: { match: { name: ours }, dhcp4: true } } });
      const pattern = `${ours.slice(0, cut)}*`;
      const changed = (await findStale(new MemoryGuest(masterFiles(pattern)), model, [])).map((c) => c.path).sort();
      expect(changed).to.deep.equal([
        '/etc/NetworkManager/system-connections/Wired.nmconnection',
        '/etc/netplan/50-cloud-init.yaml',
        '/etc/network/interfaces',
        '/etc/systemd/network/05-wired.network',
      ]);
      const kept = await findStale(new MemoryGuest({ ...masterFiles('wl*'), '/etc/NetworkManager/system-connections/Wired.nmconnection': '[connection]\nid=Wired\ntype=wifi\n[match]\ninterface-name=wl*\n' }), model, []);
      expect(summary(kept)).to.deep.equal([]);
    }), { numRuns: 30 });
  });

  it('NetworkManager [match] lists: "!" entries cover nothing, "~" entries do', async () => {
    const model = interpret({ version: 2, ethernets: { eno1: { dhcp4: true } } });
    const nm = (list: string) => new MemoryGuest({ '/etc/NetworkManager/system-connections/b.nmconnection': `[connection]\nid=b\ntype=bond\ninterface-name=bond9\n[match]\ninterface-name=${list}\n` });
    expect(summary(await findStale(nm('!eno*;wl*'), model, []))).to.deep.equal([]);
    expect(summary(await findStale(nm('wl*;~eno?'), model, []))).to.deep.equal([
      'delete /etc/NetworkManager/system-connections/b.nmconnection: master connection matching eno? also takes interface eno1',
    ]);
  });

  it('an ENI mapping stanza covering ours is removed with its options, the rest kept', async () => {
    const model = interpret({ version: 2, ethernets: { eth0: { dhcp4: true } } });
    const g = new MemoryGuest({ '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n\nmapping eth*\n    script /usr/local/sbin/map-scheme\n    map HOME eth0-home\n\nauto wlan0\niface wlan0 inet dhcp\n' });
    const [c] = await findStale(g, model, []);
    expect(c!.reason).to.equal('master ifupdown stanzas for mapping eth* removed, the rest kept');
    expect(c!.op === 'write' && c!.content.toString()).to.equal('auto lo\niface lo inet loopback\n\n\nauto wlan0\niface wlan0 inet dhcp\n');
  });
});
