/**
 * cloudInit: nocloud — a per-clone NoCloud seed: an instance-id of its own
 * (from the machine-id, stable on re-apply), the clone's host name, a
 * network-config version 2 from the same model as the renderers (valid
 * against schemas/network-v2.schema.json, and interpreting back to the same
 * model), the master's instance state removed.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { MemoryGuest } from '../../src/backends/memory.js';
import { interpret } from '../../src/network/index.js';
import { cloudInitSeedOperation, instanceId, SEED_DIR } from '../../src/operations/customize/cloud-init-seed.js';
import type { OperationContext } from '../../src/core/operation.js';
import { validateAgainst } from '../../src/schema/validate-schema.js';
import type { Profile } from '../../src/core/profile.js';
import { DISTROS, ROOT, caseNames, loadCase } from './helpers.js';

const schema = JSON.parse(readFileSync(path.join(ROOT, 'schemas', 'network-v2.schema.json'), 'utf8'));
const validateV2 = new Ajv2020.default({ allErrors: true, strict: true }).compile(schema);

const MASTER = {
  '/etc/cloud/cloud.cfg': 'datasource_list: [NoCloud, None]\n',
  '/var/lib/cloud/instance': { symlink: '/var/lib/cloud/instances/iid-master' },
  '/var/lib/cloud/instances/iid-master/obj.pkl': 'x',
};

function ctx(profile: Partial<Profile>, opts: { machineId?: string | undefined; pending?: boolean; name?: string; guest?: MemoryGuest } = {}): OperationContext {
  return {
    guest: opts.guest ?? new MemoryGuest(MASTER),
    distro: DISTROS.ubuntu,
    machine: { prepared: { name: opts.name ?? 'node01' }, hostname: opts.name ?? 'node01', fqdn: `${opts.name ?? 'node01'}.lab.example.org` },
    profile: { profile: 'p', ...profile },
    identity: { machineId: 'machineId' in opts ? opts.machineId : '0123456789abcdef0123456789abcdef', pending: opts.pending ?? false, hostKeys: [] },
  } as unknown as OperationContext;
}

const text = (changes: Awaited<ReturnType<typeof cloudInitSeedOperation.plan>>, p: string): string => {
  const c = changes.find((x) => x.path === p);
  if (!c || c.op !== 'write') throw new Error(`no write of ${p}`);
  return c.content.toString('utf8');
};

describe('cloud-init NoCloud seed (cloudInit: nocloud)', () => {
  it('does nothing without the profile key', async () => {
    expect(await cloudInitSeedOperation.plan(ctx({ network: { version: 2, ethernets: { eth0: { dhcp4: true } } } }))).to.deep.equal([]);
  });

  it('writes meta-data, user-data, network-config and the datasource list; removes the master\'s instance state', async () => {
    const network = { version: 2, ethernets: { lan: { match: { macaddress: '52:54:00:aa:bb:01' }, 'set-name': 'lan', addresses: ['10.0.0.11/24'] } } };
    const changes = await cloudInitSeedOperation.plan(ctx({ cloudInit: 'nocloud', network }));
    expect(changes.map((c) => `${c.op} ${c.path}`)).to.deep.equal([
      `write ${SEED_DIR}/meta-data`, `write ${SEED_DIR}/user-data`, 'write /etc/cloud/cloud.cfg.d/99-ghostprep-nocloud.cfg', `write ${SEED_DIR}/network-config`,
      'delete /var/lib/cloud/instance', 'delete /var/lib/cloud/instances',
    ]);
    const meta = parse(text(changes, `${SEED_DIR}/meta-data`));
    expect(meta).to.deep.equal({ 'instance-id': instanceId('0123456789abcdef0123456789abcdef', 'node01'), 'local-hostname': 'node01' });
    expect(text(changes, `${SEED_DIR}/user-data`).startsWith('#cloud-config\n')).to.equal(true);
    expect(parse(text(changes, `${SEED_DIR}/user-data`))).to.deep.equal({});
    expect(parse(text(changes, '/etc/cloud/cloud.cfg.d/99-ghostprep-nocloud.cfg'))).to.deep.equal({ datasource_list: ['NoCloud', 'None'] });
  });

  it('network-config is version 2 valid against the schema and interprets back to the same model, for every golden case', async () => {
    for (const name of caseNames()) {
      const network = loadCase(name) as Record<string, unknown>;
      const changes = await cloudInitSeedOperation.plan(ctx({ cloudInit: 'nocloud', network }));
      const v2 = parse(text(changes, `${SEED_DIR}/network-config`));
      expect(validateV2(v2), `${name}: ${JSON.stringify(validateV2.errors)}`).to.equal(true);
      expect(interpret(v2), name).to.deep.equal(interpret(network));
    }
  });

  it('instance-ids: stable for one clone, distinct between clones, never the master\'s; from the name with machineId: keep', () => {
    const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);
    fc.assert(fc.property(hex32, hex32, (a, b) => {
      expect(instanceId(a, 'n')).to.equal(instanceId(a, 'other-name'));
      if (a !== b) expect(instanceId(a, 'n')).not.to.equal(instanceId(b, 'n'));
      expect(instanceId(a, 'n')).to.match(/^iid-ghostprep-[0-9a-f]{20}$/).and.not.equal('iid-master');
    }));
    expect(instanceId(undefined, 'node01')).not.to.equal(instanceId(undefined, 'node02'));
  });

  it('marks meta-data pending when the machine-id is generated at apply; no network-config without a network', async () => {
    const changes = await cloudInitSeedOperation.plan(ctx({ cloudInit: 'nocloud' }, { pending: true }));
    const meta = changes.find((c) => c.path === `${SEED_DIR}/meta-data`)!;
    expect(meta.op === 'write' && meta.pending).to.equal(true);
    expect(changes.some((c) => c.path.endsWith('network-config'))).to.equal(false);
  });

  it('refuses a guest without cloud-init, naming the fix', async () => {
    try {
      await cloudInitSeedOperation.plan(ctx({ cloudInit: 'nocloud' }, { guest: new MemoryGuest({}) }));
      expect.fail('should refuse');
    } catch (err) {
      expect((err as Error).message).to.equal('cloudInit: nocloud, but cloud-init is not installed in the guest (no /etc/cloud/cloud.cfg); install it in the master or drop cloudInit');
    }
  });

  it('the profile schema takes cloudInit: nocloud and refuses anything else with its path', () => {
    expect(validateAgainst('profile', { profile: 'p', cloudInit: 'nocloud' })).to.deep.equal([]);
    expect(validateAgainst('profile', { profile: 'p', cloudInit: 'configdrive' }).map((d) => d.path)).to.deep.equal(['/cloudInit']);
  });
});
