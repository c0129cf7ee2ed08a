#!/usr/bin/env node
// The import graph between the top-level folders of src/, and the layer order it must follow
// (CONTRIBUTING.md, "Layer order"). Prints one "A -> B" line per folder that imports from
// another, marking with "!!" an arrow that runs back up the layers; exits 1 when there is one.
//
//   node scripts/import-graph.mjs          the graph
//   node scripts/import-graph.mjs --files  every cross-folder import, "file -> folder"
//
// test/unit/layers.test.ts uses the same functions.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Layers, top first; a module imports from its own layer's lower entries or from lower layers only. */
export const LAYERS = [
  ['cli'],
  ['fleet'],
  ['plan'],
  ['operations'],
  ['windows', 'image', 'audit'],
  ['network', 'identity', 'backends', 'template'],
  ['profile', 'distro', 'report', 'storage'],
  ['schema'],
  ['util'],
  ['core'],
];

/** The rank of a folder: its layer's index (an unknown folder ranks with the bottom layer and fails). */
export function rank(folder) {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i < 0 ? -1 : i;
}

export const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

/** Every import between two folders of src/: relative imports, `export … from` and dynamic import() alike. */
export function imports(src = SRC) {
  const out = [];
  const files = readdirSync(src, { recursive: true }).filter((f) => f.endsWith('.ts')).map((f) => f.split(path.sep).join('/')).sort();
  for (const file of files) {
    const from = file.split('/')[0];
    for (const m of readFileSync(path.join(src, file), 'utf8').matchAll(/(?:from |import\()'(\.[^']+)'/g)) {
      const to = path.relative(src, path.resolve(src, path.dirname(file), m[1])).split(path.sep)[0];
      if (to !== from) out.push({ file, from, to });
    }
  }
  return out;
}

/**
 * Imports against the order: to a higher layer, to an unknown folder, or between two
 * folders of one layer (folders side by side in a layer do not import each other).
 */
export function outOfOrder(all = imports()) {
  return all.filter((i) => rank(i.from) < 0 || rank(i.to) < 0 || rank(i.to) <= rank(i.from));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const all = imports();
  const bad = outOfOrder(all);
  if (process.argv.includes('--files')) {
    for (const i of all) console.log(`${bad.includes(i) ? '!! ' : ''}src/${i.file} -> ${i.to}`);
  } else {
    const edges = new Map();
    for (const i of all) {
      const k = `${i.from} -> ${i.to}`;
      edges.set(k, (edges.get(k) ?? false) || bad.includes(i));
    }
    const order = (k) => { const [a, b] = k.split(' -> '); return [rank(a), rank(b), k]; };
    const keys = [...edges.keys()].sort((x, y) => { const [a1, b1, kx] = order(x); const [a2, b2, ky] = order(y); return a1 - a2 || b1 - b2 || (kx < ky ? -1 : 1); });
    console.log('layers (top first): ' + LAYERS.map((l) => l.join(' ')).join('  |  '));
    for (const k of keys) console.log(`${edges.get(k) ? '!! ' : '   '}${k}`);
  }
  if (bad.length) {
    console.error(`${bad.length} import(s) against the layer order (marked !!)`);
    process.exit(1);
  }
}
