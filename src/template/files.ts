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
import { loadTemplateFile, renderTemplate } from './render.js';

export function profileFileOf(machine: RenderedMachine, pointer: string): string {
  return originOf(machine.prepared.traced.origins, pointer)?.source.file ?? '.';
}

/** Throws TemplateError (template files: named by path; inline content: by profile pointer). */
export function fileContent(machine: RenderedMachine, f: FileSpec, index: number): Buffer {
  const profileFile = profileFileOf(machine, `/files/${index}`);
  if (f.template !== undefined) {
    const t = loadTemplateFile(f.template, templateDirs(profileFile));
    return Buffer.from(renderTemplate(t.text, machine.context, path.relative(process.cwd(), t.file) || t.file));
  }
  if (f.content !== undefined) return Buffer.from(renderTemplate(f.content, machine.context, `/files/${index}/content`));
  return readFileSync(path.resolve(path.dirname(profileFile), f.source!));
}
