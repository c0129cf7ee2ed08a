/**
 * Diagnostics: one entry per problem, with the JSON path inside the document
 * and, once correlated with the source, file/line/column (ignition style).
 */
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  readonly severity: Severity;
  readonly message: string;
  /** JSON pointer inside the document ("/network/ethernets/lan/addresses/0"), "" for the root. */
  readonly path: string;
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
}

