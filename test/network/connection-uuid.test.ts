/**
 * NetworkManager connection UUIDs: every connection a clone receives or keeps
 * has a UUID of its own, derived from the clone's machine-id and the
 * connection's name (RFC 4122 version 5 layout), the same on every re-apply;
 * references between kept connections follow their renamed UUIDs.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryGuest } from '../../src/backends/memory.js';
import { planNetwork } from '../../src/network/index.js';
import { parseIni, parseKv } from '../../src/network/renderers/guest.js';
import type { FileChange } from '../../src/core/file-change.js';
import { DISTROS } from './helpers.js';

const NM = '/etc/NetworkManager/system-connections';
const MASTER_A = '6f1c1e0a-0000-4000-8000-00000000000a';
const MASTER_P = '6f1c1e0a-0000-4000-8000-00000000000b';
const MASTER_V = '6f1c1e0a-0000-4000-8000-00000000000c';

/** The master keeps a lab bridge over ens9 with a VLAN on it (none of them ours), in keyfiles and in ifcfg files. */
function master(): MemoryGuest {
  return new MemoryGuest({
    [`${NM}/lab.nmconnection`]: { content: `[connection]\nid=lab\nuuid=${MASTER_A}\ntype=bridge\ninterface-name=brlab\n\n[bridge]\nstp=false\n`, mode: 0o600 },
    [`${NM}/lab-port.nmconnection`]: { content: `[connection]\nid=lab-port\nuuid=${MASTER_P}\ntype=ethernet\ninterface-name=ens9\nmaster=${MASTER_A}\nslave-type=bridge\n`, mode: 0o600 },
    [`${NM}/lab-vlan.nmconnection`]: { content: `[connection]\nid=lab-vlan\nuuid=${MASTER_V}\ntype=vlan\ninterface-name=brlab.7\n\n[vlan]\nid=7\nparent=${MASTER_A}\n`, mode: 0o600 },
    '/etc/sysconfig/network-scripts/ifcfg-brlab': `DEVICE=brlab\nNAME=lab\nUUID=${MASTER_A}\nTYPE=Bridge\n`,
    '/etc/sysconfig/network-scripts/ifcfg-ens9': `DEVICE=ens9\nNAME=lab-port\nUUID="${MASTER_P}"\nBRIDGE_UUID=${MASTER_A}\n`,
  });
}

const CONFIG = { version: 2, ethernets: { eno1: {}, eno2: {} }, bonds: { bond0: { interfaces: ['eno1', 'eno2'], dhcp4: true } }, vlans: { v5: { id: 5, link: 'bond0' } } };

async function plan(machineId: string | undefined, renderer = 'network-manager'): Promise<Map<string, string>> {
  const p = await planNetwork({ config: CONFIG, distro: DISTROS.rocky9, reader: master(), renderer, machineId });
  return new Map(p.changes.filter((c): c is Extract<FileChange, { op: 'write' }> => c.op === 'write').map((c) => [c.path, c.content.toString('utf8')]));
}

const uuidOf = (text: string) => parseIni(text).get('connection')!.get('uuid')![0]!;
const RFC4122_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('NetworkManager connection UUIDs from the clone\'s machine-id', () => {
  const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);

  it('ours and the kept master connections: version-5 UUIDs of the clone\'s own, stable on re-apply, distinct between clones', async () => {
    await fc.assert(fc.asyncProperty(hex32, hex32, async (a, b) => {
      fc.pre(a !== b);
      const [first, again, other] = [await plan(a), await plan(a), await plan(b)];
      expect([...again]).to.deep.equal([...first]);
      const uuids = (t: Map<string, string>) => [...t].filter(([p]) => p.startsWith(NM)).map(([, text]) => uuidOf(text));
      const mine = uuids(first);
      expect(mine).to.have.length(7); // 4 of ours + 3 kept
      for (const u of mine) expect(u).to.match(RFC4122_V5);
      expect(new Set(mine).size).to.equal(mine.length);
      for (const u of uuids(other)) expect(mine).not.to.include(u);
      for (const u of [MASTER_A, MASTER_P, MASTER_V]) expect(mine).not.to.include(u);
    }), { numRuns: 10 });
  });

  it('references between kept connections follow the renamed UUIDs; everything else is kept byte for byte', async () => {
    const t = await plan('0123456789abcdef0123456789abcdef');
    const bridge = uuidOf(t.get(`${NM}/lab.nmconnection`)!);
    const port = t.get(`${NM}/lab-port.nmconnection`)!;
    expect(port).to.equal(`[connection]\nid=lab-port\nuuid=${uuidOf(port)}\ntype=ethernet\ninterface-name=ens9\nmaster=${bridge}\nslave-type=bridge\n`);
    expect(parseIni(t.get(`${NM}/lab-vlan.nmconnection`)!).get('vlan')!.get('parent')).to.deep.equal([bridge]);
  });

  it('a connection profile\'s UUID is the same whichever file format holds it (keyfile or ifcfg)', async () => {
    const t = await plan('0123456789abcdef0123456789abcdef', 'ifcfg');
    const br = parseKv(t.get('/etc/sysconfig/network-scripts/ifcfg-brlab')!);
    const port = parseKv(t.get('/etc/sysconfig/network-scripts/ifcfg-ens9')!);
    const viaNm = await plan('0123456789abcdef0123456789abcdef');
    expect(br.get('UUID')).to.equal(uuidOf(viaNm.get(`${NM}/lab.nmconnection`)!));
    expect(port.get('UUID')).to.equal(uuidOf(viaNm.get(`${NM}/lab-port.nmconnection`)!));
    expect(port.get('BRIDGE_UUID')).to.equal(br.get('UUID'));
    expect(t.get('/etc/sysconfig/network-scripts/ifcfg-ens9')).to.match(/^UUID="[0-9a-f-]{36}"$/m);
    // and the ifcfg files ghostprep writes carry one too
    expect(parseKv(t.get('/etc/sysconfig/network-scripts/ifcfg-bond0')!).get('UUID')).to.equal(uuidOf(viaNm.get(`${NM}/ghostprep-bond0.nmconnection`)!));
  });

  it('without a machine-id (machineId: keep) kept connections are left alone and ours derive from the model', async () => {
    const t = await plan(undefined);
    expect([...t.keys()].filter((p) => p.includes('/lab'))).to.deep.equal([]);
    expect(uuidOf(t.get(`${NM}/ghostprep-bond0.nmconnection`)!)).to.match(RFC4122_V5);
  });
});
