/**
 * `storage.lvm` / `storage.luks` through validate: accepted when right;
 * located errors (file, line, JSON path) for an unknown key, a bad VG name
 * rendered from a template, reencrypt and removeMasterKeys without a key.
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { tempDir } from '../helpers/images.js';

describe('storage keys in validate', () => {
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-storage-validate-'); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  async function check(storage: string): Promise<Array<{ line?: number; path?: string; message: string; file?: string }>> {
    const profile = path.join(dir, 'p.yaml');
    const inventory = path.join(dir, 'i.yaml');
    await fs.writeFile(profile, `profile: lvm\nstorage:\n${storage}`);
    await fs.writeFile(inventory, 'defaults: {profile: lvm}\nmachines:\n  - {name: node01}\n  - {name: node-02}\n');
    return validateFleet([profile], inventory).diagnostics.filter((d) => d.severity === 'error');
  }

  it('accepts the documented keys', async () => {
    await fs.writeFile(path.join(dir, 'node01.key'), 'k1\n');
    expect(await check('  lvm: {newUuids: true, vgName: "vg-{{machine.name}}"}\n  luks: {newUuid: true, key: {generate: true}, removeMasterKeys: true, reencrypt: false}\n')).to.deep.equal([]);
  });

  it('locates an unknown key, a bad rendered VG name, reencrypt and removeMasterKeys without a key', async () => {
    const unknown = await check('  lvm: {vgname: x}\n');
    expect(unknown[0]!.line).to.equal(3);
    expect(unknown[0]!.message).to.match(/vgname/);
    const bad = await check('  lvm:\n    vgName: "vg {{machine.name}}"\n');
    expect(bad.map((d) => [d.line, d.path])).to.deep.equal([[4, '/storage/lvm/vgName'], [4, '/storage/lvm/vgName']]);
    expect(bad[0]!.message).to.match(/"vg node01" may hold only/);
    const luks = await check('  luks:\n    reencrypt: true\n    removeMasterKeys: true\n');
    expect(luks.map((d) => d.path)).to.include.members(['/storage/luks/reencrypt', '/storage/luks/removeMasterKeys']);
    expect(luks.find((d) => d.path === '/storage/luks/reencrypt')!.line).to.equal(4);
    expect(luks.find((d) => d.path === '/storage/luks/reencrypt')!.message).to.match(/reencrypt needs key/);
    // with a key of the clone's own, reencrypt is accepted
    expect(await check('  luks:\n    key: {generate: true}\n    reencrypt: true\n')).to.deep.equal([]);
  });
});
