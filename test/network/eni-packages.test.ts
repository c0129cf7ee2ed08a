/**
 * ENI on Debian: bonds need ifenslave, bridges bridge-utils, VLANs vlan (or
 * ifupdown2, which does all three itself). `plan` fails the machine with one
 * message naming what is missing, before anything is written; Alpine's
 * ifupdown-ng and `plan` without a target are not checked.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryGuest } from '../../src/backends/memory.js';
import { planNetwork } from '../../src/network/index.js';
import { installedPackages } from '../../src/network/renderers/eni.js';
import { DISTROS } from './helpers.js';

const KINDS = {
  bond: { pkg: 'ifenslave', hook: '/etc/network/if-pre-up.d/ifenslave' },
  bridge: { pkg: 'bridge-utils', hook: '/etc/network/if-pre-up.d/bridge' },
  vlan: { pkg: 'vlan', hook: '/etc/network/if-pre-up.d/vlan' },
} as const;
type Kind = keyof typeof KINDS;

function config(kinds: readonly Kind[]): Record<string, unknown> {
  const c: Record<string, unknown> = { version: 2, ethernets: { eth0: {}, eth1: {}, eth2: { dhcp4: true } } };
  if (kinds.includes('bond')) c.bonds = { bond0: { interfaces: ['eth0'], dhcp4: true } };
  if (kinds.includes('bridge')) c.bridges = { br0: { interfaces: ['eth1'], dhcp4: true } };
  if (kinds.includes('vlan')) c.vlans = { 'eth2.7': { id: 7, link: 'eth2', dhcp4: true } };
  return c;
}

const status = (pkgs: readonly string[], state = 'install ok installed') => pkgs.map((p) => `Package: ${p}\nStatus: ${state}\nVersion: 1\n`).join('\n');

function guest(files: Record<string, string>): MemoryGuest {
  return new MemoryGuest({ '/etc/network/interfaces': 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n', '/sbin/ifup': '', ...files });
}

async function problem(kinds: readonly Kind[], files: Record<string, string>, distro = DISTROS.debian, renderOnly = false): Promise<string | undefined> {
  try {
    await planNetwork({ config: config(kinds), distro, reader: guest(files), renderer: 'eni', renderOnly });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('ENI: the packages ifupdown needs for bonds, bridges and VLANs', () => {
  it('names the missing package, the interfaces that need it and the fix', async () => {
    expect(await problem(['bond'], { '/var/lib/dpkg/status': status(['ifupdown']) })).to.equal(
      'renderer eni: bond0 needs the ifenslave package (ifupdown applies bond-* options through /etc/network/if-pre-up.d/ifenslave), ' +
        'but the guest does not have it (/var/lib/dpkg/status); install ifenslave (or ifupdown2) in the master, or choose another networkRenderer',
    );
  });

  it('fails exactly when a needed package is neither installed nor has its hook, and names exactly those', async () => {
    const kinds = fc.subarray(['bond', 'bridge', 'vlan'] as Kind[]);
    await fc.assert(fc.asyncProperty(kinds, kinds, kinds, async (used, installed, hooks) => {
      const files: Record<string, string> = { '/var/lib/dpkg/status': status(['ifupdown', ...installed.map((k) => KINDS[k].pkg)]) };
      for (const k of hooks) files[KINDS[k].hook] = '#!/bin/sh\n';
      const lacking = used.filter((k) => !installed.includes(k) && !hooks.includes(k));
      const msg = await problem(used, files);
      if (!lacking.length) expect(msg).to.equal(undefined);
      else expect(msg).to.match(new RegExp(`; install ${lacking.map((k) => KINDS[k].pkg).join(' ')} \\(or ifupdown2\\)`));
    }), { numRuns: 60 });
  });

  it('a removed package (config files left) does not count; ifupdown2 covers everything; Alpine and plan without a target are not checked', async () => {
    expect(await problem(['vlan'], { '/var/lib/dpkg/status': status(['vlan'], 'deinstall ok config-files') })).to.match(/the vlan package/);
    expect(await problem(['bond', 'bridge', 'vlan'], { '/var/lib/dpkg/status': status(['ifupdown2']) })).to.equal(undefined);
    expect(await problem(['bond', 'bridge'], {}, DISTROS.alpine)).to.equal(undefined);
    expect(await problem(['bond'], {}, DISTROS.debian, true)).to.equal(undefined);
    expect(await problem([], {})).to.equal(undefined);
  });

  it('reads dpkg status paragraphs', () => {
    expect([...installedPackages(`${status(['a', 'b'])}\n${status(['c'], 'purge ok not-installed')}`)]).to.deep.equal(['a', 'b']);
  });
});
