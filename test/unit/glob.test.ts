/**
 * The one glob matcher and its two dialects: shell globs for --target (no
 * leading dot unless asked for), fnmatch for systemd's Name= and the guest
 * paths of seal operations. `[!x]` negates a bracket in both.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryGuest } from '../../src/backends/memory.js';
import { findStale, interpret } from '../../src/network/index.js';
import { guestGlob } from '../../src/operations/util.js';
import { expandGlob, expandTargetGlob, globMatch, hasGlobMagic, type GlobDialect } from '../../src/util/glob.js';
import { tempDir } from '../helpers/rootfs.js';

const DIALECTS: readonly GlobDialect[] = ['shell', 'fnmatch'];

describe('globMatch', () => {
  const both: Array<[string, string, boolean]> = [
    ['eth[!0]', 'eth1', true],
    ['eth[!0]', 'eth0', false],
    ['eth[!0]', 'eth!', true],
    ['eth[!0]', 'eth10', false],
    ['eth[^0]', 'eth0', false],
    ['eth[0-3]', 'eth2', true],
    ['eth[0-3]', 'eth4', false],
    ['en*', 'enp1s0', true],
    ['en*', 'wlan0', false],
    ['eth?', 'eth1', true],
    ['eth?', 'eth10', false],
    ['[[:digit:]]x', '7x', true],
    ['a\\*', 'a*', true],
    ['a\\*', 'ab', false],
    // not glob syntax here: braces, extglobs, a leading ! and regex characters are themselves
    ['{a,b}', 'a', false],
    ['{a,b}', '{a,b}', true],
    ['!eth0', 'eth1', false],
    ['!eth0', '!eth0', true],
    ['+(a)', '+(a)', true],
    ['a.b', 'axb', false],
    ['a|b', 'a|b', true],
    ['a[', 'a[', true],
    ['#a', '#a', true],
    ['"*"', '"x"', true],
    ['"a"', 'a', false],
    ['\\\\', '\\', true],
    ['\\\\ ', '\\ ', true],
    ['\\\\ ', ' ', false],
    ['eth[01]', 'eth[01]', false],
    ['*\\]', 'a]', true],
    ['?\\\\', 'a\\', true],
    ['*\\\\', 'a\\', true],
    ['*\\\\', 'a\\\\', true],
    ['*\\\\', 'a', false],
  ];
  for (const dialect of DIALECTS) {
    for (const [pattern, name, expected] of both) {
      it(`${dialect}: ${pattern} ${expected ? 'matches' : 'does not match'} ${name}`, () => {
        expect(globMatch(pattern, name, dialect)).to.equal(expected);
      });
    }
  }
  it('a leading dot: only an explicit one matches in the shell dialect, any in fnmatch', () => {
    expect(globMatch('*', '.bash_history', 'shell')).to.equal(false);
    expect(globMatch('?bash_history', '.bash_history', 'shell')).to.equal(false);
    expect(globMatch('.*', '.bash_history', 'shell')).to.equal(true);
    expect(globMatch('*', '.bash_history', 'fnmatch')).to.equal(true);
    expect(globMatch('.*_history', '.bash_history', 'fnmatch')).to.equal(true);
  });

  // names from the characters glob syntax is made of, and a few others
  const name = fc.array(fc.constantFrom(...'ab0 .\\"\'[]!^*?{}()+@|$#-:,'.split('')), { minLength: 1, maxLength: 10 }).map((a) => a.join('')).filter((s) => s !== '.' && s !== '..');
  const escape = (s: string) => s.replace(/[\\*?[\]]/g, '\\$&');
  it('a name with its glob characters escaped matches itself and nothing else', () => {
    fc.assert(fc.property(name, name, fc.constantFrom(...DIALECTS), (a, b, dialect) => {
      expect(globMatch(escape(a), a, dialect)).to.equal(true);
      expect(globMatch(escape(a), b, dialect)).to.equal(a === b);
    }), { numRuns: 500 });
  });
  it('PREFIX* and *SUFFIX match exactly the names that start or end so; [!c] exactly the one-character names other than c', () => {
    fc.assert(fc.property(name, name, fc.constantFrom(...DIALECTS), (prefix, n, dialect) => {
      fc.pre(!n.startsWith('.') && !prefix.startsWith('.'));
      expect(globMatch(`${escape(prefix)}*`, n, dialect)).to.equal(n.startsWith(prefix));
      expect(globMatch(`*${escape(prefix)}`, n, dialect)).to.equal(n.endsWith(prefix));
    }), { numRuns: 500 });
    const char = fc.constantFrom(...'abc019-_:'.split(''));
    fc.assert(fc.property(char, char, fc.constantFrom(...DIALECTS), (c, n, dialect) => {
      expect(globMatch(`[!${c}]`, n, dialect)).to.equal(n !== c);
    }));
  });
  it('hasGlobMagic: *, ? and [ make a glob; a plain path is taken as it is', () => {
    expect(['a*', 'a?', 'eth[01]'].map(hasGlobMagic)).to.deep.equal([true, true, true]);
    expect(['/srv/clones/node01', 'disk{1}.img'].map(hasGlobMagic)).to.deep.equal([false, false]);
  });
});

describe('systemd-networkd Name= with a bracket', () => {
  const networkd = (nic: string) => interpret({ version: 2, ethernets: { [nic]: { dhcp4: true } } });
  const master = () => new MemoryGuest({ '/etc/systemd/network/05-others.network': '[Match]\nName=eth[!0]\n[Network]\nDHCP=yes\n' });
  it('Name=eth[!0] takes precedence over ours for eth1: the master file goes', async () => {
    const changes = await findStale(master(), networkd('eth1'), []);
    expect(changes.map((c) => `${c.op} ${c.path}: ${c.reason}`)).to.deep.equal([
      'delete /etc/systemd/network/05-others.network: master network file matching eth[!0] takes precedence over ours for eth1',
    ]);
  });
  it('Name=eth[!0] does not match eth0: the master file stays', async () => {
    expect(await findStale(master(), networkd('eth0'), [])).to.deep.equal([]);
  });
});

describe('guestGlob (fnmatch dialect, inside the guest)', () => {
  const guest = new MemoryGuest({
    '/tmp/.X0-lock': '', '/tmp/build.log': '', '/root/.bash_history': '', '/root/.lesshst': '',
    '/etc/ssh/ssh_host_rsa_key': '', '/etc/ssh/ssh_host_rsa_key.pub': '', '/etc/ssh/sshd_config': '',
    '/etc/systemd/system/multi-user.target.wants/a.service': '', '/etc/systemd/system/b.service': '',
  });
  it('/tmp/* takes dotfiles too', async () => {
    expect(await guestGlob(guest, '/tmp/*')).to.deep.equal(['/tmp/.X0-lock', '/tmp/build.log']);
  });
  it('matches per segment, sorted, existing paths only', async () => {
    expect(await guestGlob(guest, '/etc/ssh/ssh_host_*')).to.deep.equal(['/etc/ssh/ssh_host_rsa_key', '/etc/ssh/ssh_host_rsa_key.pub']);
    expect(await guestGlob(guest, '/root/.*_history')).to.deep.equal(['/root/.bash_history']);
    expect(await guestGlob(guest, '/etc/systemd/system/*.wants/*')).to.deep.equal(['/etc/systemd/system/multi-user.target.wants/a.service']);
    expect(await guestGlob(guest, '/nowhere/*')).to.deep.equal([]);
  });
});

describe('expandGlob / expandTargetGlob (shell dialect, this host)', () => {
  const dir = tempDir('ghostprep-glob-');
  for (const n of ['node0', 'node1', 'node2', '.hidden']) mkdirSync(path.join(dir, n));
  writeFileSync(path.join(dir, 'node9'), 'a report beside the trees');
  it('expands per segment, sorted; a leading dot only when the pattern has one', () => {
    expect(expandGlob(`${dir}/*`)).to.deep.equal(['node0', 'node1', 'node2', 'node9'].map((n) => path.join(dir, n)));
    expect(expandGlob(`${dir}/.h*`)).to.deep.equal([path.join(dir, '.hidden')]);
    expect(expandGlob(`${dir}/node[!0]`)).to.deep.equal(['node1', 'node2', 'node9'].map((n) => path.join(dir, n)));
    expect(expandGlob(`${dir}/none*`)).to.deep.equal([]);
    expect(expandGlob(`${dir}/node{1}`)).to.deep.equal([`${dir}/node{1}`]);
  });
  it('a rootfs: glob takes directories only and keeps its prefix', () => {
    expect(expandTargetGlob(`rootfs:${dir}/node?`)).to.deep.equal(['node0', 'node1', 'node2'].map((n) => `rootfs:${path.join(dir, n)}`));
  });
});
