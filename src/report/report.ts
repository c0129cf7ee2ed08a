/** The run report (schemas/report.schema.json, docs/state.md) and known_hosts output. */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { withFileLock } from '../util/file-lock.js';

export interface MachineReport {
  name: string;
  target: string;
  status: 'ok' | 'failed' | 'skipped';
  error: string | null;
  distro: { id: string; versionId: string; family: string } | null;
  identity: { hostname: string; fqdn: string; machineId: string | null; sshHostKeys: Array<{ type: string; sha256: string }>; addresses: string[] } | null;
  changes: Array<{ op: string; path: string; mode: string | null; sha256: string | null }>;
  /** Block-device changes (storage.newUuids); absent when there are none. */
  deviceChanges?: Array<{ op: string; device: string; from: string; to: string; fstype?: string; partnum?: number; disk?: string }>;
  durationMs: number;
}

export interface RunReport {
  version: 1;
  command: string;
  started: string;
  finished: string;
  summary: { ok: number; failed: number; durationMs: number };
  machines: MachineReport[];
}

export function writeAtomic(file: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}

/**
 * known_hosts lines `fqdn,hostname,ip type key`. Lines of other hosts in an
 * existing file are kept, ours replaced. The shards of one deploy may share
 * the file: the read-modify-write holds FILE.lock, so none loses another's lines.
 */
export async function updateKnownHosts(file: string, entries: ReadonlyArray<{ names: string[]; publicKeys: string[] }>): Promise<void> {
  await withFileLock(`${file}.lock`, `known_hosts file ${file}`, () => {
    let existing = '';
    try { existing = readFileSync(file, 'utf8'); } catch { /* new file */ }
    const ours = new Set(entries.flatMap((e) => e.names));
    const kept = existing.split('\n').filter((l) => l && !l.split(/\s+/)[0]!.split(',').some((n) => ours.has(n)));
    const added = entries.flatMap((e) => e.publicKeys.map((k) => `${e.names.join(',')} ${k.split(/\s+/).slice(0, 2).join(' ')}`));
    writeAtomic(file, [...kept, ...added].join('\n') + '\n');
  });
}
