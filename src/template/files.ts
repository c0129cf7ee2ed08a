/**
 * Content of a profile `files` entry for one machine: a template file, inline
 * content (itself a template) or a host file. Shared by the files operation
 * and by validate, which renders them all so template errors surface before
 * anything runs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RenderedMachine } from '../fleet/prepare.js';
import { originOf } from '../profile/merge.js';
import type { FileSpec } from '../profile/types.js';
import { templateDirs } from '../schema/rules.js';
import { independentOfIdentity, loadTemplateFile, renderTemplate } from './render.js';

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

/** Throws TemplateError (template files: named by path; inline content: by profile pointer). */
export function fileContent(machine: RenderedMachine, f: FileSpec, index: number): Buffer {
  const profileFile = entryFile(machine, index);
  if (f.template === undefined && f.content === undefined) {
    const file = path.resolve(path.dirname(profileFile), f.source!);
    let content = hostFiles.get(file);
    if (!content) {
      content = readFileSync(file);
      hostFiles.set(file, content);
    }
    return content;
  }
  const where = `${process.cwd()}\0${profileFile}`; // (a relative profile path: relative to the cwd)
  let dirs = dirsOf.get(where);
  if (!dirs) dirsOf.set(where, (dirs = templateDirs(profileFile)));
  const t = f.template !== undefined ? loadTemplateFile(f.template, dirs) : undefined;
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
