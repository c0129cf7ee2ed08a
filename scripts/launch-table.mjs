#!/usr/bin/env node
/**
 * The launch count of a test run as a table: appliance launches (and their
 * drives), QEMU boots, debootstraps, mkfs, qemu-img and sfdisk runs and
 * ghostprep CLI runs, per spec file and per group, from the JSON lines that
 * test/helpers/launch-log.ts writes (GHOSTPREP_LAUNCH_LOG=FILE; scripts/test.mjs
 * preloads it and prints this table at the end).
 *
 *   GHOSTPREP_LAUNCH_LOG=/tmp/launches.jsonl node scripts/test.mjs dist/test/image/
 *   node scripts/launch-table.mjs /tmp/launches.jsonl [--markdown]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const KINDS = ['appliance', 'drives', 'vm', 'debootstrap', 'mkfs', 'qemu-img', 'sfdisk', 'ghostprep'];
const HEAD = { appliance: 'appliances', drives: 'drives', vm: 'VM boots', debootstrap: 'debootstrap', mkfs: 'mkfs', 'qemu-img': 'qemu-img', sfdisk: 'sfdisk', ghostprep: 'CLI runs' };

export function readLaunches(file) {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
}

/** Rows of counts keyed by `key(record)`, most appliances first. */
export function countBy(records, key) {
  const rows = new Map();
  for (const r of records) {
    const k = key(r);
    const row = rows.get(k) ?? Object.fromEntries([['name', k], ...KINDS.map((x) => [x, 0])]);
    row[r.kind] = (row[r.kind] ?? 0) + 1;
    if (r.kind === 'appliance') row.drives += r.drives ?? 0;
    rows.set(k, row);
  }
  return [...rows.values()].sort((a, b) => b.appliance - a.appliance || b.vm - a.vm || a.name.localeCompare(b.name));
}

export function launchTable(records, { markdown = false } = {}) {
  if (!records.length) return '  (no launches recorded)\n';
  const sections = [
    ['group', countBy(records, (r) => r.group)],
    ['spec file', countBy(records, (r) => `[${r.group}] ${r.file.replace(/^dist\//, '')}`)],
  ];
  const total = countBy(records, () => 'total')[0];
  const out = [];
  for (const [title, rows] of sections) {
    const all = [...rows, total];
    if (markdown) {
      out.push(`| ${title} | ${KINDS.map((k) => HEAD[k]).join(' | ')} |`, `|---|${KINDS.map(() => '--:').join('|')}|`);
      for (const r of all) out.push(`| ${r.name === 'total' ? '**total**' : `\`${r.name}\``} | ${KINDS.map((k) => r[k]).join(' | ')} |`);
      out.push('');
    } else {
      const w = Math.max(title.length, ...all.map((r) => r.name.length));
      out.push(`  ${title.padEnd(w)}  ${KINDS.map((k) => HEAD[k].padStart(12)).join('')}`);
      for (const r of all) out.push(`  ${r.name.padEnd(w)}  ${KINDS.map((k) => String(r[k]).padStart(12)).join('')}`);
      out.push('');
    }
  }
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const file = process.argv[2];
  if (!file) { console.error('usage: node scripts/launch-table.mjs LAUNCH_LOG.jsonl [--markdown]'); process.exit(2); }
  process.stdout.write(launchTable(readLaunches(file), { markdown: process.argv.includes('--markdown') }));
}
