#!/usr/bin/env node
/**
 * `npm run docs`: regenerate the parts of the manual that the program itself
 * knows, so that they cannot drift from it.
 *
 *   docs/commands.md    every `<!-- help: CMD -->` block is the output of
 *                       `ghostprep CMD --help`; a command (or subcommand) the
 *                       CLI lists but the page lacks gets a new section at the
 *                       end, and a block for a command the CLI no longer has
 *                       is an error
 *   docs/operations.md  every `<!-- operations: KIND -->` block is a table built
 *                       from the operation records (src/operations)
 *
 * Text outside the blocks is written by hand and kept as it is.
 *
 *   node scripts/gen-docs.mjs           rewrite the files (after `npm run build`)
 *   node scripts/gen-docs.mjs --check   write nothing; exit 1 and name the files
 *                                       that differ from what would be written
 *
 * test/unit/docs.test.ts runs the same generation and fails when a committed
 * file differs, so a CLI option or an operation added without `npm run docs`
 * is caught by the tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generateNetworkDocs } from './gen-docs-network.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = 'dist/src/cli/main.js';
const COMMANDS_MD = 'docs/commands.md';
const OPERATIONS_MD = 'docs/operations.md';

/**
 * Help text as a user sees it in a pipe: commander wraps at 80 columns when
 * stdout is not a terminal. Variables that could change a default shown in
 * the help are left out, so every machine generates the same bytes.
 */
function help(args) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(GHOSTPREP_|LIBGUESTFS_|COLUMNS$|NO_COLOR$|FORCE_COLOR$)/.test(k)));
  const r = spawnSync(process.execPath, [path.join(ROOT, CLI), ...args, '--help'], { cwd: ROOT, encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`ghostprep ${args.join(' ')} --help exited ${r.status}: ${r.stderr}`);
  return r.stdout.replace(/[ \t]+$/gm, '').trimEnd();
}

/** Names listed under "Commands:" in a help text (commander's `help` command left out). */
function subcommands(text) {
  const start = text.indexOf('\nCommands:\n');
  if (start < 0) return [];
  const section = text.slice(start + 11).split(/\n\n/)[0];
  return [...section.matchAll(/^ {2}([a-z][a-z0-9-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
}

/** Every command and subcommand of the CLI, depth first, with its help text. */
export function commandHelp() {
  const out = [];
  const walk = (args) => {
    const text = help(args);
    out.push({ name: args.join(' '), text });
    for (const sub of subcommands(text)) walk([...args, sub]);
  };
  walk([]);
  return out;
}

const HELP_BLOCK = /<!-- help: ([a-z0-9 -]*?) -->\n[\s\S]*?<!-- \/help -->/g;
const helpBlock = (name, text) => `<!-- help: ${name} -->\n\`\`\`text\n${text}\n\`\`\`\n<!-- /help -->`;

export function renderCommandsPage(page, commands) {
  const byName = new Map(commands.map((c) => [c.name, c]));
  const seen = new Set();
  let result = page.replace(HELP_BLOCK, (_, name) => {
    const c = byName.get(name);
    if (!c) throw new Error(`${COMMANDS_MD}: a help block for "ghostprep ${name}", which the CLI does not have: remove the block`);
    seen.add(name);
    return helpBlock(name, c.text);
  });
  const missing = commands.filter((c) => !seen.has(c.name));
  if (missing.length) {
    result = result.trimEnd() + '\n';
    for (const c of missing) result += `\n## ${c.name || 'ghostprep'}\n\n${helpBlock(c.name, c.text)}\n`;
  }
  return result;
}

/** The operation records, as the program registers them. */
export async function operationRecords() {
  const mod = await import(pathToFileURL(path.join(ROOT, 'dist/src/operations/index.js')).href);
  return mod.operations.list().map((op) => mod.summarize(op));
}

const cell = (s) => String(s).replace(/\|/g, '\\|');

/**
 * One markdown table per kind, with the guests each operation applies to;
 * customize operations (which run in an order) in run order with their
 * order, seal operations by name. A record that does not say its guests, or
 * a customize record without an order, is an error: the table would hide it.
 */
export function operationsTable(records, kind) {
  const ops = records.filter((r) => r.kind === kind);
  if (!ops.length) throw new Error(`no ${kind} operations registered`);
  for (const o of ops) {
    if (!Array.isArray(o.guests) || !o.guests.length) throw new Error(`${kind} operation "${o.name}" does not say which guests it applies to`);
    if (kind === 'customize' && typeof o.order !== 'number') throw new Error(`customize operation "${o.name}" has no order`);
  }
  const ordered = ops.some((o) => typeof o.order === 'number');
  if (ordered) {
    const missing = ops.find((o) => typeof o.order !== 'number');
    if (missing) throw new Error(`${kind} operation "${missing.name}" has no order while others of its kind have one`);
    ops.sort((a, b) => a.order - b.order);
  } else ops.sort((a, b) => a.name.localeCompare(b.name));
  const cols = [...(ordered ? ['order'] : []), 'operation', 'default', 'guests', 'what it does'];
  const rows = ops.map((o) => [...(ordered ? [o.order] : []), `\`${o.name}\``, o.defaultEnabled ? 'on' : 'off', o.guests.join(', '), cell(o.description)]);
  return [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const OPS_BLOCK = /<!-- operations: ([a-z]+) -->\n[\s\S]*?<!-- \/operations -->/g;

export function renderOperationsPage(page, records) {
  const kinds = new Set(records.map((r) => r.kind));
  const seen = new Set();
  let result = page.replace(OPS_BLOCK, (_, kind) => {
    seen.add(kind);
    return `<!-- operations: ${kind} -->\n${operationsTable(records, kind)}\n<!-- /operations -->`;
  });
  for (const kind of [...kinds].filter((k) => !seen.has(k)).sort()) {
    result = result.trimEnd() + `\n\n## ${kind} operations\n\n<!-- operations: ${kind} -->\n${operationsTable(records, kind)}\n<!-- /operations -->\n`;
  }
  return result;
}

/**
 * Every generated file: path (relative to the repository) -> the content it
 * should have. `commands` (from commandHelp()) may be passed in by a caller
 * that already ran the CLI.
 */
export async function generateDocs(commands) {
  if (!existsSync(path.join(ROOT, CLI))) throw new Error(`${CLI} is missing: run npm run build first`);
  const read = (f) => readFileSync(path.join(ROOT, f), 'utf8');
  return new Map([
    [COMMANDS_MD, renderCommandsPage(read(COMMANDS_MD), commands ?? commandHelp())],
    [OPERATIONS_MD, renderOperationsPage(read(OPERATIONS_MD), await operationRecords())],
    await generateNetworkDocs(ROOT, read),
  ]);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const check = process.argv.includes('--check');
  const stale = [];
  for (const [file, content] of await generateDocs()) {
    if (readFileSync(path.join(ROOT, file), 'utf8') === content) continue;
    stale.push(file);
    if (!check) writeFileSync(path.join(ROOT, file), content);
  }
  if (check && stale.length) {
    console.error(`out of date (run npm run docs): ${stale.join(', ')}`);
    process.exit(1);
  }
  console.log(stale.length ? `${check ? 'out of date' : 'rewrote'}: ${stale.join(', ')}` : 'docs up to date');
}
