/**
 * The manual's renderer table (docs/network.md, between `<!-- renderers -->`
 * and `<!-- /renderers -->`), built from the renderer records
 * (src/network/renderers), in detection order: one row per record, or per
 * flavour when a record renders more than one. Used by scripts/gen-docs.mjs.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const NETWORK_MD = 'docs/network.md';

/** The renderer records, as the program registers them, in detection order. */
export async function rendererRecords(root) {
  const mod = await import(pathToFileURL(path.join(root, 'dist/src/network/renderers/index.js')).href);
  return mod.RENDERERS.byPriority().map((r) => ({ name: r.name, docs: r.docs }));
}

const cell = (s) => String(s).replace(/\|/g, '\\|');
const mode = (m) => m.toString(8).padStart(4, '0');
/** Full path for the first file, the name alone for the next ones in the same directory. */
const files = (list) => list.map((f, i) => `\`${i > 0 && path.posix.dirname(f) === path.posix.dirname(list[0]) ? path.posix.basename(f) : f}\``).join(', ');

export function renderersTable(records) {
  if (!records.length) throw new Error('no network renderers registered');
  const rows = records.flatMap((r) => {
    if (!r.docs?.length) throw new Error(`network renderer ${r.name} has no manual row (docs)`);
    return r.docs.map((d) => [`\`${r.name}\`${d.flavour ? ` (${d.flavour})` : ''}`, `${files(d.files)} (${mode(d.mode)})`, cell(d.notes)]);
  });
  return ['| renderer | files (mode) | notes |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const BLOCK = /<!-- renderers -->\n[\s\S]*?<!-- \/renderers -->/;

export function renderNetworkPage(page, records) {
  if (!BLOCK.test(page)) throw new Error(`${NETWORK_MD} has no <!-- renderers --> block for the renderer table`);
  return page.replace(BLOCK, () => `<!-- renderers -->\n${renderersTable(records)}\n<!-- /renderers -->`);
}

/** [path, content] of the network page as it should be. */
export async function generateNetworkDocs(root, read) {
  return [NETWORK_MD, renderNetworkPage(read(NETWORK_MD), await rendererRecords(root))];
}
