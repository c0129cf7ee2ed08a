/**
 * Authorized keys: every entry, inline or each line of a `file:`, must be an
 * OpenSSH public key (src/identity/authorized-keys.ts). Messages say where
 * and what kind of thing is wrong, never what the entry holds: the usual
 * mistake is a private key, whose text must not reach any output.
 *
 * Entries written literally in a profile are checked once per profile file
 * (so `validate -p` alone finds them); entries made by templates are checked
 * per machine after rendering.
 */
import path from 'node:path';
import { checkKeyFile, KEY_FILE_MAX_BYTES, parseAuthorizedKey } from '../identity/authorized-keys.js';
import type { LoadedConfig } from '../profile/config.js';
import { originOf } from '../profile/profile-merge.js';
import { placeIn } from '../profile/source.js';
import type { Diagnostic } from '../core/diagnostic.js';
import { locateProblem } from '../template/locate.js';
import { type RenderedMachine } from '../core/machine.js';
import { HostFileError, readHostText } from '../util/host-file.js';

/** [pointer, value] of every authorized key entry of a profile (raw or rendered). */
export function keyEntries(data: { ssh?: { authorizedKeys?: Record<string, readonly unknown[] | undefined> }; users?: ReadonlyArray<{ authorizedKeys?: readonly unknown[] } | undefined> } | undefined): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  const byUser = data?.ssh?.authorizedKeys;
  if (byUser && typeof byUser === 'object') {
    for (const [user, keys] of Object.entries(byUser)) if (Array.isArray(keys)) keys.forEach((k, i) => out.push([`/ssh/authorizedKeys/${user}/${i}`, k]));
  }
  if (Array.isArray(data?.users)) data!.users!.forEach((u, ui) => { if (Array.isArray(u?.authorizedKeys)) u!.authorizedKeys!.forEach((k: unknown, i: number) => out.push([`/users/${ui}/authorizedKeys/${i}`, k])); });
  return out;
}

/** The problem of one entry (a message without its content), or undefined. `baseDir` resolves `file:` entries. */
export function keyEntryProblem(entry: string, baseDir: string): string | undefined {
  if (!entry.startsWith('file:')) {
    const r = parseAuthorizedKey(entry);
    return r.ok ? undefined : r.reason;
  }
  const name = entry.slice('file:'.length);
  let text: string;
  try {
    text = readHostText(path.resolve(baseDir, name), { maxBytes: KEY_FILE_MAX_BYTES });
  } catch (err) {
    if (!(err instanceof HostFileError)) throw err;
    // a missing file is reported by checkReferencedFiles
    return err.code === 'ENOENT' ? undefined : `key file ${JSON.stringify(name)} ${err.reason}`;
  }
  const problem = checkKeyFile(text);
  return problem && `key file ${JSON.stringify(name)}, line ${problem.line}, ${problem.reason}`;
}

/** Literal (template-free) key entries of every profile file. */
export function checkProfileKeys(config: LoadedConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const p of config.profiles.values()) {
    const base = path.dirname(p.source.file);
    for (const [pointer, k] of keyEntries(p.data as Parameters<typeof keyEntries>[0])) {
      if (typeof k !== 'string' || k.includes('{{')) continue;
      const problem = keyEntryProblem(k, base);
      if (problem) out.push(placeIn(p.source, { severity: 'error', path: pointer, message: problem }));
    }
  }
  return out;
}

/** Key entries that templates made, checked on the rendered machine. */
export function authorizedKeysRule(r: RenderedMachine): Diagnostic[] {
  const raw = new Map(keyEntries(r.prepared.traced.value as Parameters<typeof keyEntries>[0]));
  const out: Diagnostic[] = [];
  for (const [pointer, k] of keyEntries(r.profile as Parameters<typeof keyEntries>[0])) {
    const before = raw.get(pointer);
    if (typeof k !== 'string' || (typeof before === 'string' && !before.includes('{{'))) continue;
    const from = originOf(r.prepared.traced.origins, pointer)?.source.file;
    const problem = keyEntryProblem(k, from ? path.dirname(from) : '.');
    if (problem) out.push(locateProblem(r.prepared, pointer, problem));
  }
  return out;
}
