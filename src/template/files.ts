/**
 * Content of a profile `files` entry for one machine: a template file, inline
 * content (itself a template) or a host file. Shared by the files operation
 * and by validate, which renders them all so template errors surface before
 * anything runs.
 */
import path from 'node:path';
import type { RenderedMachine } from '../core/machine.js';
import { originOf } from '../profile/profile-merge.js';
import { placeIn } from '../profile/source.js';
import type { FileSpec } from '../core/profile.js';
import { formatText } from '../report/diagnostics.js';
import { type Diagnostic } from '../core/diagnostic.js';
import { templateDirs } from './render.js';
import { InvalidInputError } from '../util/errors.js';
import { HostFileError, readHostFile } from '../util/host-file.js';
import { independentOfIdentity, loadTemplateFile, renderTemplate } from './render.js';

/**
 * A host file a `files` entry names (`source:` or `template:`) that cannot be
 * read: not a regular file, too large, unreadable. Located at the entry's
 * value in the profile that wrote it.
 */
export class HostFileProblem extends InvalidInputError {
  constructor(readonly diagnostic: Diagnostic, options?: { cause?: unknown }) {
    super([diagnostic], formatText(diagnostic));
    if (options?.cause) this.cause = options.cause;
  }
}

function hostFileProblem(machine: RenderedMachine, pointer: string, value: string, err: HostFileError): HostFileProblem {
  const message = `${JSON.stringify(value)}${value !== err.file ? ` (${err.file})` : ''}: ${err.reason}`;
  const origin = originOf(machine.prepared.traced.origins, pointer);
  const d: Diagnostic = origin ? placeIn(origin.source, { severity: 'error', path: origin.pointer, message }) : { severity: 'error', path: pointer, message: `machine ${machine.prepared.name}: ${message}` };
  return new HostFileProblem(d, { cause: err });
}

export function profileFileOf(machine: RenderedMachine, pointer: string): string {
  return originOf(machine.prepared.traced.origins, pointer)?.source.file ?? '.';
}

// Per resolved profile tree (shared by the machines without overrides) and per run: where each
// `files` entry was written, the template directories of a profile file, a template's display name.
const fileOfEntry = new WeakMap<object, Map<number, string>>();
const dirsOf = new Map<string, string[]>();
const displayName = new Map<string, string>();

function entryFile(machine: RenderedMachine, index: number): string {
  const traced = machine.prepared.traced;
  let byIndex = fileOfEntry.get(traced);
  if (!byIndex) fileOfEntry.set(traced, (byIndex = new Map()));
  let file = byIndex.get(index);
  if (file === undefined) byIndex.set(index, (file = profileFileOf(machine, `/files/${index}`)));
  return file;
}

/**
 * `validate` renders every file of every machine, and `plan` / `apply` render them
 * again. A machine rendered once per run (see renderMachine) keeps its profile
 * object, so a file whose template cannot see the identity or the distro is
 * rendered once and kept with that profile (and dropped with it).
 */
const rendered = new WeakMap<object, Map<number, { text: string; content: Buffer }>>();
// Host files named by `source:` are read once per run, like template files.
const hostFiles = new Map<string, Buffer>();

/**
 * Throws TemplateError (template files: named by path; inline content: by profile pointer),
 * HostFileProblem (a `source:` or `template:` that is no readable regular file under the cap).
 */
export function fileContent(machine: RenderedMachine, f: FileSpec, index: number): Buffer {
  const profileFile = entryFile(machine, index);
  if (f.template === undefined && f.content === undefined) {
    const file = path.resolve(path.dirname(profileFile), f.source!);
    let content = hostFiles.get(file);
    if (!content) {
      try {
        content = readHostFile(file, { what: 'source file' });
      } catch (err) {
        throw err instanceof HostFileError ? hostFileProblem(machine, `/files/${index}/source`, f.source!, err) : err;
      }
      hostFiles.set(file, content);
    }
    return content;
  }
  const where = `${process.cwd()}\0${profileFile}`; // (a relative profile path: relative to the cwd)
  let dirs = dirsOf.get(where);
  if (!dirs) dirsOf.set(where, (dirs = templateDirs(profileFile)));
  let t: { file: string; text: string } | undefined;
  try {
    t = f.template !== undefined ? loadTemplateFile(f.template, dirs) : undefined;
  } catch (err) {
    throw err instanceof HostFileError ? hostFileProblem(machine, `/files/${index}/template`, f.template!, err) : err;
  }
  const text = t ? t.text : f.content!;
  const shown = t ? `${process.cwd()}\0${t.file}` : '';
  let name = t ? displayName.get(shown) : `/files/${index}/content`;
  if (name === undefined) displayName.set(shown, (name = path.relative(process.cwd(), t!.file) || t!.file));
  if (!independentOfIdentity(text)) return Buffer.from(renderTemplate(text, machine.context, name));
  let byIndex = rendered.get(machine.profile);
  const hit = byIndex?.get(index);
  if (hit && hit.text === text) return hit.content;
  const content = Buffer.from(renderTemplate(text, machine.context, name));
  if (!byIndex) rendered.set(machine.profile, (byIndex = new Map()));
  byIndex.set(index, { text, content });
  return content;
}
