import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { detectDistro, parseOsRelease } from '../../src/distro/detect.js';
import { deriveMachineId, generateMachineId, parseMachineId } from '../../src/identity/machine-id.js';
import { checkHostname, checkFqdn } from '../../src/identity/hostname.js';
import { applyUsers, parseTable } from '../../src/identity/users.js';
import { fingerprint, keyTypeOf } from '../../src/identity/ssh-keys.js';
import { rewriteHosts } from '../../src/operations/customize/hostname.js';
import { parseShard, selectShard, shardOf } from '../../src/fleet/shard.js';
import { parseTarget } from '../../src/fleet/targets.js';
import { findDuplicates, type GuestIdentity } from '../../src/fleet/guest-identity.js';
import { formatGithub, formatText } from '../../src/report/diagnostics.js';
import { FIXTURES, ROOTFS_FIXTURES } from '../helpers/rootfs.js';

describe('distro detection', () => {
  it('parses quoted and unquoted os-release values', () => {
    const kv = parseOsRelease('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID=9.4\n# comment\nNAME=\'Rocky Linux\'\n');
    expect(kv).to.include({ ID: 'rocky', ID_LIKE: 'rhel centos fedora', VERSION_ID: '9.4', NAME: 'Rocky Linux' });
  });
  const expected: Record<string, string> = { debian12: 'debian', ubuntu2204: 'debian', rocky9: 'rhel', rocky8: 'rhel', fedora40: 'rhel', opensuse155: 'suse', arch: 'arch', alpine319: 'alpine' };
  for (const f of ROOTFS_FIXTURES) {
    it(`detects the ${expected[f]} family of fixture ${f}`, () => {
      const root = path.join(FIXTURES, 'rootfs', f);
      let text: string;
      try { text = readFileSync(path.join(root, 'etc/os-release'), 'utf8'); } catch { text = readFileSync(path.join(root, 'usr/lib/os-release'), 'utf8'); }
      expect(detectDistro(text).family).to.equal(expected[f]);
    });
  }
  it('falls back to ID_LIKE and reports unknown otherwise', () => {
    expect(detectDistro('ID=pika\nID_LIKE=ubuntu debian\n').family).to.equal('debian');
    expect(detectDistro('ID=plan9\n').family).to.equal('unknown');
    expect(detectDistro('ID=rhel\nVERSION_ID="8.9"\n').major).to.equal(8);
  });
});

describe('machine-id', () => {
  it('generates 32 lowercase hex digits shaped as UUID v4', () => {
    const id = generateMachineId();
    expect(id).to.match(/^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    expect(generateMachineId()).to.not.equal(id);
  });
  it('derives the same id from the same secret and name, different across names and secrets', () => {
    expect(deriveMachineId('s', 'node01')).to.equal(deriveMachineId('s', 'node01'));
    expect(deriveMachineId('s', 'node01')).to.not.equal(deriveMachineId('s', 'node02'));
    expect(deriveMachineId('s', 'node01')).to.not.equal(deriveMachineId('t', 'node01'));
  });
  it('treats uninitialized, empty and malformed files as no id', () => {
    expect(parseMachineId('uninitialized\n')).to.equal(undefined);
    expect(parseMachineId('')).to.equal(undefined);
    expect(parseMachineId('ABCDEF0123456789ABCDEF0123456789')).to.equal(undefined);
    expect(parseMachineId('f43282a3158b244229296e838e50ddbd\n')).to.equal('f43282a3158b244229296e838e50ddbd');
  });
});

describe('host names', () => {
  it('accepts RFC 1123 labels and rejects the rest', () => {
    expect(checkHostname('node-01')).to.equal(undefined);
    expect(checkHostname('node_01')).to.match(/RFC 1123/);
    expect(checkHostname('-node')).to.match(/RFC 1123/);
    expect(checkHostname('a'.repeat(64))).to.match(/63/);
    expect(checkHostname('node\n01')).to.match(/white space/);
    expect(checkFqdn('node01.lab.example.org')).to.equal(undefined);
    expect(checkFqdn('node01..org')).to.match(/empty/);
  });
  it('rewrites the Debian 127.0.1.1 line and the master name elsewhere', () => {
    const hosts = '127.0.0.1\tlocalhost\n127.0.1.1\tmaster.lab.example.org\tmaster\n10.0.0.5 master # old\n::1 localhost\n';
    const out = rewriteHosts(hosts, 'master', 'node01', 'node01.lab.example.org', true);
    expect(out).to.include('127.0.1.1\tnode01.lab.example.org node01\n');
    expect(out).to.include('10.0.0.5\tnode01 # old');
    expect(out).to.not.include('master');
    expect(out).to.include('::1 localhost\n');
    expect(rewriteHosts('127.0.0.1 localhost\n', undefined, 'n', 'n.x', true)).to.equal('127.0.0.1 localhost\n127.0.1.1\tn.x n\n');
  });
});

describe('passwd/shadow/group editing', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\n+::::::\nmaster:x:1000:1000::/home/master:/bin/bash\n';
  const shadow = 'root:$6$abc:19000:0:99999:7:::\nmaster:!:19000:0:99999:7:::\n';
  const group = 'root:x:0:\nsudo:x:27:master\nmaster:x:1000:\n';
  const gshadow = 'root:*::\nsudo:*::master\nmaster:!::\n';
  it('adds a user with its own group and keeps every other line byte for byte', () => {
    const r = applyUsers({ passwd, shadow, group, gshadow }, [{ name: 'ops', groups: ['@admin'], passwordHash: '$6$x$y' }], { defaultShell: '/bin/sh', hasShadow: true, hasGshadow: true });
    expect(r.problems).to.deep.equal([]);
    expect(r.passwd).to.equal(passwd + 'ops:x:1001:1001::/home/ops:/bin/sh\n');
    expect(r.shadow).to.equal(shadow + 'ops:$6$x$y::0:99999:7:::\n');
    expect(r.group).to.equal('root:x:0:\nsudo:x:27:master,ops\nmaster:x:1000:\nops:x:1001:\n');
    expect(r.gshadow).to.equal('root:*::\nsudo:*::master,ops\nmaster:!::\nops:!::\n');
  });
  it('updates an existing user in place and is idempotent', () => {
    const once = applyUsers({ passwd, shadow, group, gshadow }, [{ name: 'master', shell: '/bin/zsh', passwordHash: '$6$n$h', groups: ['sudo'] }], { defaultShell: '/bin/sh', hasShadow: true, hasGshadow: true });
    expect(once.passwd).to.include('master:x:1000:1000::/home/master:/bin/zsh\n');
    expect(once.shadow).to.include('master:$6$n$h:19000:');
    const twice = applyUsers({ passwd: once.passwd, shadow: once.shadow, group: once.group, gshadow: once.gshadow }, [{ name: 'master', shell: '/bin/zsh', passwordHash: '$6$n$h', groups: ['sudo'] }], { defaultShell: '/bin/sh', hasShadow: true, hasGshadow: true });
    expect(twice.passwd + twice.shadow + twice.group + twice.gshadow).to.equal(once.passwd + once.shadow + once.group + once.gshadow);
  });
  it('refuses a uid change, a taken uid and a missing group', () => {
    expect(applyUsers({ passwd, group }, [{ name: 'master', uid: 5 }], { defaultShell: '/bin/sh', hasShadow: false, hasGshadow: false }).problems[0]).to.match(/orphan/);
    expect(applyUsers({ passwd, group }, [{ name: 'x', uid: 1000 }], { defaultShell: '/bin/sh', hasShadow: false, hasGshadow: false }).problems[0]).to.match(/already used by master/);
    expect(applyUsers({ passwd, group }, [{ name: 'x', groups: ['docker'] }], { defaultShell: '/bin/sh', hasShadow: false, hasGshadow: false }).problems[0]).to.match(/group "docker" does not exist/);
  });
  it('keeps files without a trailing newline parseable', () => {
    expect(parseTable('a:b\nc:d').rows).to.deep.equal([['a', 'b'], ['c', 'd']]);
  });
});

describe('SSH key helpers', () => {
  it('computes OpenSSH SHA256 fingerprints', () => {
    const pub = readFileSync(path.join(FIXTURES, 'rootfs/debian12/etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
    expect(fingerprint(pub)).to.equal('SHA256:gTlALRrurwPqDUmCJ9DEPJIzPksNoo1MUjPQtyHPkyg');
    expect(keyTypeOf(pub)).to.equal('ed25519');
    expect(keyTypeOf('ecdsa-sha2-nistp256 AAAA')).to.equal('ecdsa');
  });
});

describe('shards', () => {
  it('parses I/N and rejects bad ones', () => {
    expect(parseShard('1/4')).to.deep.equal({ index: 1, count: 4 });
    for (const bad of ['4/4', '1/0', 'x', '-1/2']) expect(() => parseShard(bad)).to.throw(/shard/);
  });
  it('assigns every machine to exactly one shard, stably (property)', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 60 }), fc.integer({ min: 1, max: 9 }), (names, n) => {
      const machines = names.map((name) => ({ name }));
      const parts = Array.from({ length: n }, (_, i) => selectShard(machines, { index: i, count: n }));
      expect(parts.flat().length).to.equal(machines.length);
      for (const m of machines) expect(parts.filter((p) => p.includes(m)).length).to.equal(1);
      for (const m of machines) expect(shardOf(m.name, n)).to.equal(shardOf(m.name, n));
    }));
  });
  it('balances a large inventory', () => {
    const machines = Array.from({ length: 4000 }, (_, i) => ({ name: `node${String(i).padStart(4, '0')}` }));
    for (let i = 0; i < 4; i++) expect(selectShard(machines, { index: i, count: 4 }).length).to.be.within(900, 1100);
  });
});

describe('targets', () => {
  it('parses rootfs, images, devices and {name} patterns', () => {
    expect(parseTarget('rootfs:/srv/{name}', 'n1')).to.deep.include({ kind: 'rootfs', path: '/srv/n1' });
    expect(parseTarget('clones/{name}.qcow2', 'n1')).to.deep.include({ kind: 'image', path: 'clones/n1.qcow2', format: 'qcow2' });
    expect(parseTarget('disk.img')).to.deep.include({ format: 'raw' });
    expect(parseTarget('/dev/sdb')).to.deep.include({ kind: 'device' });
    expect(() => parseTarget('disk.txt')).to.throw(/unknown kind/);
  });
});

describe('audit duplicate detection', () => {
  const id = (machineId: string, host: string, key: string): GuestIdentity => ({ distro: { id: 'debian', versionId: '12', family: 'debian', name: 'd' }, hostname: host, machineId, machineIdRaw: machineId, dbusMachineId: null, sshHostKeys: [{ type: 'ed25519', sha256: key, comment: '' }], networkFiles: [] });
  it('lists every value shared by two or more targets', () => {
    const d = findDuplicates([{ target: 'a', identity: id('1', 'h1', 'k1') }, { target: 'b', identity: id('1', 'h2', 'k2') }, { target: 'c', identity: id('3', 'h3', 'k2') }]);
    expect(d.map((x) => `${x.kind}:${x.targets.join(',')}`).sort()).to.deep.equal(['machine-id:a,b', 'ssh-host-key:b,c']);
  });
});

describe('diagnostic formats', () => {
  const d = { severity: 'error' as const, message: '"10.0.0.300/24" is not an IPv4/IPv6 CIDR address', path: '/network/ethernets/lan/addresses/0', file: 'profiles/lab.yaml', line: 12, col: 7 };
  it('prints FILE:LINE:COL: error: PATH: message', () => {
    expect(formatText(d)).to.equal('profiles/lab.yaml:12:7: error: /network/ethernets/lan/addresses/0: "10.0.0.300/24" is not an IPv4/IPv6 CIDR address');
  });
  it('prints GitHub workflow commands with escaping', () => {
    expect(formatGithub(d)).to.equal('::error file=profiles/lab.yaml,line=12,col=7::/network/ethernets/lan/addresses/0: "10.0.0.300/24" is not an IPv4/IPv6 CIDR address');
    expect(formatGithub({ ...d, message: 'a\nb%' })).to.match(/a%0Ab%25$/);
  });
});
