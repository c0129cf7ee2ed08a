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
  const profileFile = profileFileOf(machine, `/files/${index}`);
  if (f.template === undefined && f.content === undefined) {
    const file = path.resolve(path.dirname(profileFile), f.source!);
    let content = hostFiles.get(file);
    if (!content) {
      content = readFileSync(file);
      hostFiles.set(file, content);
    }
    return content;
  }
  const t = f.template !== undefined ? loadTemplateFile(f.template, templateDirs(profileFile)) : undefined;
  const text = t ? t.text : f.content!;
  const name = t ? path.relative(process.cwd(), t.file) || t.file : `/files/${index}/content`;
  if (!independentOfIdentity(text)) return Buffer.from(renderTemplate(text, machine.context, name));
  let byIndex = rendered.get(machine.profile);
  const hit = byIndex?.get(index);
  if (hit && hit.text === text) return hit.content;
  const content = Buffer.from(renderTemplate(text, machine.context, name));
  if (!byIndex) rendered.set(machine.profile, (byIndex = new Map()));
  byIndex.set(index, { text, content });
  return content;
}
