/**
 * A machine of the fleet as the engine passes it around: its loaded sources,
 * its resolved profile with provenance, its template data and, once rendered,
 * its profile with every template string filled in.
 */
import type { Document, LineCounter } from 'yaml';
import type { Diagnostic } from './diagnostic.js';
import type { MachineEntry, Profile } from './profile.js';

export interface SourceFile {
  /** Path as given by the user (relative paths stay relative in messages). */
  readonly file: string;
  readonly text: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  /**
   * Plain data (undefined for an empty document or one that was refused): maps
   * are objects without a prototype, and no key is __proto__, constructor or prototype.
   */
  readonly data: unknown;
}

/** Where each value came from: source file plus the pointer inside it. */
export interface Origin { readonly source: SourceFile; readonly pointer: string }

export type Origins = Map<string, Origin>;

export interface Traced<T = unknown> { value: T; origins: Origins }

export interface TemplateContext {
  machine: Record<string, unknown> & { name: string; hostname: string; fqdn: string; machineId: string; sshHostKeys: Record<string, string> };
  site: Record<string, unknown>;
  profile: { name: string };
  distro: { id: string; versionId: string; family: string; name: string };
  vars: Record<string, unknown>;
}

export interface PreparedMachine {
  readonly index: number;
  readonly name: string;
  readonly entry: MachineEntry;
  readonly profileName: string;
  readonly traced: Traced<Record<string, unknown>>;
  readonly vars: Record<string, unknown>;
  readonly inventory: SourceFile;
}

export interface MachineIdentityData {
  readonly machineId: string;
  readonly sshHostKeys: Record<string, string>;
}

export interface RenderedMachine {
  readonly prepared: PreparedMachine;
  readonly profile: Profile;
  readonly hostname: string;
  readonly fqdn: string;
  readonly context: TemplateContext;
  readonly diagnostics: Diagnostic[];
}

