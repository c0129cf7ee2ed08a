/**
 * The layer order of src/ (CONTRIBUTING.md, "Layer order"): modules import
 * downward only,
 *
 *   cli -> fleet -> operations, plan -> the rest -> util
 *
 * where "the rest" (backends, distro, identity, image, network, profile,
 * report, schema, template, windows) may import each other without cycles.
 * An import is out of order when it goes to a higher layer, or closes a
 * cycle between two folders of one layer.
 *
 * KNOWN_OUT_OF_ORDER holds the imports that break the order today (file ->
 * folder). It can only shrink: a new out-of-order import fails this test,
 * and so does an entry that is no longer true (remove it with the fix).
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');
const RANK: Record<string, number> = { cli: 0, fleet: 1, operations: 2, plan: 2, util: 4 };
const rank = (folder: string): number => RANK[folder] ?? 3;

const KNOWN_OUT_OF_ORDER = new Set([
  'backends/guestfs/backend.ts -> image',
  'backends/guestfs/inspect.ts -> windows',
  'identity/resolve.ts -> fleet',
  'identity/resolve.ts -> operations',
  'image/capture.ts -> backends',
  'image/decrypt.ts -> backends',
  'image/grow.ts -> backends',
  'image/restore.ts -> backends',
  'network/index.ts -> plan',
  'network/renderers/common.ts -> plan',
  'network/renderers/eni.ts -> plan',
  'network/renderers/guest.ts -> plan',
  'network/renderers/ifcfg.ts -> plan',
  'network/renderers/netplan.ts -> plan',
  'network/renderers/network-manager.ts -> plan',
  'network/renderers/networkd.ts -> plan',
  'network/stale.ts -> plan',
  'operations/customize/authorized-keys.ts -> plan',
  'operations/customize/clone-state.ts -> plan',
  'operations/customize/files.ts -> plan',
  'operations/customize/firstboot.ts -> plan',
  'operations/customize/ssh-host-keys.ts -> plan',
  'operations/customize/timezone.ts -> plan',
  'operations/customize/users.ts -> plan',
  'operations/customize/windows-computer-name.ts -> plan',
  'operations/customize/windows-run-once.ts -> plan',
  'operations/registry.ts -> fleet',
  'operations/registry.ts -> plan',
  'operations/seal/logs.ts -> plan',
  'operations/seal/network-manager.ts -> plan',
  'operations/seal/remove.ts -> plan',
  'operations/seal/ssh-host-keys.ts -> plan',
  'operations/seal/user-accounts.ts -> plan',
  'operations/util.ts -> plan',
  'plan/assemble.ts -> operations',
  'profile/config.ts -> schema',
  'schema/rules-keys.ts -> fleet',
  'schema/rules-keys.ts -> profile',
  'schema/rules-targets.ts -> fleet',
  'schema/rules-targets.ts -> profile',
  'schema/rules-users.ts -> fleet',
  'schema/rules-users.ts -> profile',
  'schema/rules.ts -> fleet',
  'schema/rules.ts -> profile',
  'schema/rules.ts -> template',
  'schema/rules.ts -> windows',
  'schema/validate.ts -> profile',
  'template/files.ts -> fleet',
  'template/files.ts -> schema',
  'util/errors.ts -> report',
  'windows/check.ts -> fleet',
  'windows/detect.ts -> backends',
  'windows/hive.ts -> backends',
  'windows/hive.ts -> plan',
  'windows/regf.ts -> plan',
  'windows/settings.ts -> fleet',
  'windows/settings.ts -> schema',
  'windows/unattend.ts -> fleet',
]);

/** Every import of src/ as "file -> folder" (relative imports and dynamic import() alike). */
function imports(): Array<{ file: string; from: string; to: string }> {
  const out: Array<{ file: string; from: string; to: string }> = [];
  for (const file of (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => f.split(path.sep).join('/')).sort()) {
    const from = file.split('/')[0]!;
    for (const m of readFileSync(path.join(SRC, file), 'utf8').matchAll(/(?:from |import\()'(\.[^']+)'/g)) {
      const to = path.relative(SRC, path.resolve(SRC, path.dirname(file), m[1]!)).split(path.sep)[0]!;
      if (to !== from) out.push({ file, from, to });
    }
  }
  return out;
}

function outOfOrder(): Set<string> {
  const all = imports();
  const edges = new Set(all.map((i) => `${i.from}>${i.to}`));
  const bad = new Set<string>();
  for (const i of all) {
    const up = rank(i.to) < rank(i.from);
    const cycle = rank(i.to) === rank(i.from) && edges.has(`${i.to}>${i.from}`);
    if (up || cycle) bad.add(`${i.file} -> ${i.to}`);
  }
  return bad;
}

describe('layer order of src/', () => {
  it('no new import runs back up the layers or closes a cycle between folders', () => {
    const fresh = [...outOfOrder()].filter((x) => !KNOWN_OUT_OF_ORDER.has(x));
    expect(fresh, 'imports against the layer order (CONTRIBUTING.md, "Layer order")').to.deep.equal([]);
  });

  it('the list of known out-of-order imports holds only ones that still exist', () => {
    const now = outOfOrder();
    expect([...KNOWN_OUT_OF_ORDER].filter((x) => !now.has(x)), 'fixed: remove from KNOWN_OUT_OF_ORDER').to.deep.equal([]);
  });

  it('sees an upward import when one is made (the check itself)', () => {
    expect(rank('util')).to.be.greaterThan(rank('schema'));
    expect(rank('schema')).to.be.greaterThan(rank('plan'));
    expect(rank('plan')).to.equal(rank('operations'));
    expect(rank('fleet')).to.be.greaterThan(rank('cli'));
  });
});
