/**
 * Counts of the trust suite (test/trust/): every test adds what it tried,
 * and test/trust/summary.test.ts prints one line at the end of the run.
 * Also the outputs the trust tests kept and the secrets that must never
 * appear in them (filled through test/helpers/trust-run.ts, scanned by
 * test/trust/secrets.test.ts).
 *
 * `npm test` runs the trust files in more than one process (the kill -9
 * test beside the others, scripts/test.mjs) and the secrets scan and the
 * summary last: with GHOSTPREP_TRUST_SHARE=DIR each process writes what it
 * counted and kept to DIR/GROUP-PID.json when it exits, and
 * `mergeSharedTrustRecords()` adds what the other processes wrote. Run in
 * one process (`npm test -- dist/test/trust`), nothing is shared and the
 * counts and outputs are this process's own.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const trustCounts = {
  /** Broken profiles/inventories/templates validated (fixtures/bad corpus plus generated ones). */
  badInputs: 0,
  /** Hostile guest fixtures applied to, by backend. */
  hostileRootfs: 0,
  hostileImages: 0,
  /** kill -9 rounds of a deploy, each followed by a resumed run. */
  interruptionRounds: 0,
  /** fast-check runs (generated cases) over all properties. */
  propertyRuns: 0,
  /** CLI outputs, files and process command lines scanned for secrets. */
  outputsScanned: 0,
  secretsChecked: 0,
};

export type TrustCount = keyof typeof trustCounts;

export function count(what: TrustCount, n = 1): void {
  trustCounts[what] += n;
}

export interface Captured { readonly label: string; readonly text: string }

/** Everything the trust tests saw; scanned at the end for secrets. */
export const captured: Captured[] = [];
/** Secret strings that must never appear in `captured` (key material, hashes, encryption keys) -> what they are. */
export const secrets = new Map<string, string>();

/**
 * A process's record: the trust groups' mocha processes write one, and so does
 * every ghostprep run of every group (test/trust/cli-record.ts, preloaded by
 * scripts/test.mjs), with `truncated` writes beyond its size cap.
 */
interface SharedRecord { group: string; pid: number; counts: Partial<Record<TrustCount, number>>; captured: Captured[]; secrets: Array<[string, string]>; truncated?: number }

/** Outputs kept per group (this process's own under its GROUP), for the summary line. */
export const outputsPerGroup = new Map<string, number>();
/** Writes left out of kept outputs beyond their size cap (cli-record.ts), summed over all records. */
export let truncatedWrites = 0;

const SHARE_DIR = process.env.GHOSTPREP_TRUST_SHARE;
const GROUP = process.env.GHOSTPREP_TEST_LANE ?? 'trust';
const own = (file: string): boolean => file === `${GROUP}-${process.pid}.json`;

if (SHARE_DIR) {
  process.on('exit', () => {
    const record: SharedRecord = { group: GROUP, pid: process.pid, counts: { ...trustCounts }, captured, secrets: [...secrets] };
    writeFileSync(path.join(SHARE_DIR, `${GROUP}-${process.pid}.json`), JSON.stringify(record));
  });
}

let merged: string[] | undefined;

/**
 * Add the counts, outputs and secrets of the other trust processes of this
 * run (once; later calls return the same list). Returns the groups merged.
 * GHOSTPREP_TRUST_SHARE_FROM names the groups that must have written a
 * record: a missing one is an error (a scan that silently saw nothing of
 * the kill -9 test would prove nothing).
 */
export function mergeSharedTrustRecords(): string[] {
  if (merged) return merged;
  merged = [];
  outputsPerGroup.set(GROUP, captured.length);
  if (!SHARE_DIR) return merged;
  const files = existsSync(SHARE_DIR) ? readdirSync(SHARE_DIR).filter((f) => f.endsWith('.json') && !own(f)).sort() : [];
  for (const f of files) {
    const r = JSON.parse(readFileSync(path.join(SHARE_DIR, f), 'utf8')) as SharedRecord;
    for (const [k, v] of Object.entries(r.counts)) if (k !== 'outputsScanned' && k !== 'secretsChecked') count(k as TrustCount, v);
    captured.push(...r.captured.map((c) => ({ label: `[${r.group}] ${c.label}`, text: c.text })));
    outputsPerGroup.set(r.group, (outputsPerGroup.get(r.group) ?? 0) + r.captured.length); // own group's other records too
    truncatedWrites += r.truncated ?? 0;
    for (const [needle, what] of r.secrets) secrets.set(needle, what);
    if (!merged.includes(r.group)) merged.push(r.group);
  }
  const expected = process.env.GHOSTPREP_TRUST_SHARE_FROM?.split(',').filter(Boolean) ?? [];
  const missing = expected.filter((g) => !merged!.includes(g));
  if (missing.length) throw new Error(`GHOSTPREP_TRUST_SHARE: no record of the trust group(s) ${missing.join(', ')} in ${SHARE_DIR} (records of: ${merged.join(', ') || 'none'}, ${files.length} files)`);
  return merged;
}

const endOfRun: { scans: Array<() => void>; summaries: Array<() => void> } = { scans: [], summaries: [] };

/**
 * Run `fn` once every test of this process has run, whatever the order the
 * files were loaded in: the secrets scan (`scan`) must see the outputs of
 * every file, and the summary (`summary`) prints the counts the scan adds.
 * One root-level `after` hook runs every scan, then every summary. Call it at
 * the top level of a spec file (outside any describe), so that the hook is the
 * root suite's.
 */
export function atEndOfRun(kind: 'scan' | 'summary', fn: () => void): void {
  if (!endOfRun.scans.length && !endOfRun.summaries.length) {
    after('trust: the secrets scan and the summary, after every test of the run', () => {
      for (const f of endOfRun.scans) f();
      for (const f of endOfRun.summaries) f();
    });
  }
  (kind === 'scan' ? endOfRun.scans : endOfRun.summaries).push(fn);
}
