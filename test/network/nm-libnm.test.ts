/**
 * Every NetworkManager keyfile the renderer writes (all golden cases, plus
 * generated bond/bridge/VLAN layouts) is read by libnm itself
 * (NM.keyfile_read through python3-gi) and must pass nm_connection_verify
 * as written, without NetworkManager's normalization filling gaps.
 *
 * Skips only when python3-gi or libnm's typelib is missing AND $CI is unset.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DISTROS, caseNames, loadCase, renderTree } from './helpers.js';

const PYTHON = '/usr/bin/python3';

const VERIFY = `
import sys, gi
gi.require_version('NM', '1.0')
from gi.repository import NM, GLib
for p in sys.argv[1:]:
    kf = GLib.KeyFile()
    kf.load_from_file(p, GLib.KeyFileFlags.NONE)
    try:
        c = NM.keyfile_read(kf, '/etc/NetworkManager/system-connections', NM.KeyfileHandlerFlags.NONE, None, None)
        c.verify()
        print('ok\\t' + p)
    except GLib.Error as e:
        print('invalid\\t' + p + '\\t' + e.message)
`;

function libnmAvailable(): boolean {
  const r = spawnSync(PYTHON, ['-c', "import gi; gi.require_version('NM', '1.0'); from gi.repository import NM"], { stdio: 'ignore' });
  return r.status === 0;
}

/** Layouts beyond the golden cases: ports of each master kind, VLANs by name and by MAC-matched parents. */
const EXTRA: Record<string, unknown> = {
  'bridge-over-bond': { version: 2, ethernets: { eno1: {}, eno2: {} }, bonds: { bond0: { interfaces: ['eno1', 'eno2'], parameters: { mode: '802.3ad' } } }, bridges: { br0: { interfaces: ['bond0'], addresses: ['10.0.0.5/24'], routes: [{ to: 'default', via: '10.0.0.1', metric: 50 }, { to: '10.9.0.0/16', via: '10.0.0.9' }] } } },
  'vlan-on-mac-matched': { version: 2, ethernets: { up: { match: { macaddress: '52:54:00:00:00:07' }, dhcp6: true } }, vlans: { v20: { id: 20, link: 'up', dhcp4: true } } },
  'stp-bridge': { version: 2, ethernets: { eno1: {} }, bridges: { br0: { interfaces: ['eno1'], dhcp4: true, parameters: { stp: true, 'forward-delay': 4, 'hello-time': 2, 'max-age': 12 } } } },
};

describe('NetworkManager keyfiles through libnm', function () {
  this.timeout(60_000);
  before(function () {
    if (!libnmAvailable()) {
      if (process.env.CI) throw new Error('libnm introspection not found but $CI is set: install gir1.2-nm-1.0 python3-gi (listed in .ci/apt-packages.d/network.txt)');
      console.warn('      (skipped: apt-get install --no-install-recommends gir1.2-nm-1.0 python3-gi)');
      this.skip();
    }
  });

  it('every generated keyfile passes nm_connection_verify without normalization', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'ghostprep-libnm-'));
    try {
      const files: string[] = [];
      const configs: [string, unknown][] = [...caseNames().map((n): [string, unknown] => [n, loadCase(n)]), ...Object.entries(EXTRA)];
      for (const [name, config] of configs) {
        for (const [p, f] of renderTree(config, 'network-manager', DISTROS.rocky9)) {
          if (!p.endsWith('.nmconnection')) continue;
          const dest = path.join(root, name, path.basename(p));
          mkdirSync(path.dirname(dest), { recursive: true });
          writeFileSync(dest, f.text, { mode: 0o600 });
          files.push(dest);
        }
      }
      expect(files.length).to.be.greaterThan(15);
      const out = execFileSync(PYTHON, ['-c', VERIFY, ...files], { encoding: 'utf8' });
      const invalid = out.split('\n').filter((l) => l.startsWith('invalid')).map((l) => l.replace(root + '/', ''));
      expect(invalid).to.deep.equal([]);
      expect(out.split('\n').filter((l) => l.startsWith('ok')).length).to.equal(files.length);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
