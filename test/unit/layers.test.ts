/**
 * The layer order of src/ (CONTRIBUTING.md, "Layer order"): modules import
 * downward only, top first,
 *
 *   cli -> fleet -> plan -> operations -> windows, image, audit
 *       -> network, identity, backends, template -> profile, distro, report, storage
 *       -> schema -> util -> core
 *
 * Folders named together form one layer and do not import each other. An
 * import is out of order when it goes to the same or a higher layer, or to a
 * folder the order does not name. There are no exceptions: the order is
 * written once, in LAYERS of scripts/import-graph.mjs (`node
 * scripts/import-graph.mjs` prints the graph), and this test uses that script.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface Import { file: string; from: string; to: string }
interface Graph {
  LAYERS: string[][];
  rank(folder: string): number;
  imports(src?: string): Import[];
  outOfOrder(all?: Import[]): Import[];
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const graph = (): Promise<Graph> => import(pathToFileURL(path.join(REPO, 'scripts/import-graph.mjs')).href) as Promise<Graph>;

describe('layer order of src/', () => {
  it('no import runs back up the layers, sideways within a layer, or to an unnamed folder', async () => {
    const g = await graph();
    expect(g.outOfOrder().map((i) => `${i.file} -> ${i.to}`), 'imports against the layer order (CONTRIBUTING.md, "Layer order")').to.deep.equal([]);
  });

  it('the order names every folder of src/ once, and core at the bottom', async () => {
    const g = await graph();
    const named = g.LAYERS.flat();
    expect(new Set(named).size).to.equal(named.length);
    const folders = new Set(g.imports().flatMap((i) => [i.from, i.to]));
    expect([...folders].filter((f) => g.rank(f) < 0)).to.deep.equal([]);
    expect(g.LAYERS.at(-1)).to.deep.equal(['core']);
  });

  it('sees an upward, a sideways and an unknown import when one is made (the check itself)', async () => {
    const g = await graph();
    const src = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-layers-'));
    try {
      const write = (file: string, text: string): void => {
        mkdirSync(path.dirname(path.join(src, file)), { recursive: true });
        writeFileSync(path.join(src, file), text);
      };
      write('util/a.ts', "import { x } from '../fleet/b.js';\n");
      write('network/c.ts', "export { y } from '../backends/d.js';\n");
      write('core/e.ts', "const m = await import('../nowhere/f.js');\n");
      write('fleet/g.ts', "import type { z } from '../core/e.js';\nimport { w } from './h.js';\n");
      const bad = g.outOfOrder(g.imports(src)).map((i) => `${i.file} -> ${i.to}`);
      expect(bad).to.deep.equal(['core/e.ts -> nowhere', 'network/c.ts -> backends', 'util/a.ts -> fleet']);
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });
});
