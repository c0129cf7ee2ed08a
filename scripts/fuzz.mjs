#!/usr/bin/env node
/**
 * `npm run fuzz -- --runs N [--seed S] [--path P] [--strict] [--survey] [--invariant NAME] [--repro DIR]`:
 * the property-based fuzzer over the whole pipeline (test/fuzz/), outside
 * mocha. Prints the run time, the seed and, for a counterexample, its
 * seed/path and a shrunk reproduction written to a directory it names.
 * Exit 0 when no invariant failed (known-open classes are listed, not
 * failures; --strict counts them too), 1 otherwise. --survey runs every
 * case and lists every violation under its case's rule classes (to fill
 * or check test/fuzz/known-open.ts). --invariant NAME: only that invariant
 * counts (a replay shrinks towards a counterexample of that one property).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const known = new Set(['--runs', '--seed', '--path', '--repro', '--strict', '--shrink', '--survey', '--invariant']);
for (const a of args) if (a.startsWith('--') && !known.has(a)) { console.error(`fuzz: unknown option ${a} (${[...known].join(', ')})`); process.exit(2); }

const runs = Number(opt('--runs') ?? 300);
const seed = opt('--seed') !== undefined ? Number(opt('--seed')) : Date.now() % 2 ** 31;
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) { console.error('fuzz: --runs and --seed take integers'); process.exit(2); }

const { fuzz, formatSummary } = await import(path.join(root, 'dist/test/fuzz/runner.js'));
console.log(`fuzz: ${runs} case(s), seed ${seed}${opt('--path') ? `, path ${opt('--path')}` : ''}${args.includes('--strict') ? ', strict (known-open classes count)' : ''}`);
const summary = await fuzz({
  runs, seed, path: opt('--path'), strict: args.includes('--strict'), survey: args.includes('--survey'), invariant: opt('--invariant'),
  shrinkBudget: opt('--shrink') !== undefined ? Number(opt('--shrink')) : undefined,
  reproRoot: opt('--repro') && path.resolve(opt('--repro')),
  log: (l) => console.log(l),
});
console.log(formatSummary(summary));
process.exit(summary.failure ? 1 : 0);
