/**
 * What every command shares: global options, a logger that keeps stdout for
 * results (JSON with --json) and stderr for logs, and the one place where
 * errors become exit codes.
 */
import { formatDiagnostics, hasErrors } from '../report/diagnostics.js';
import { type Diagnostic } from '../core/diagnostic.js';
import { ExitCode, GhostprepError, InvalidInputError } from '../util/errors.js';

export interface GlobalOptions { json?: boolean; quiet?: boolean; verbose?: boolean; progress?: boolean; luksKeyFile?: string[] }

export class Logger {
  constructor(private readonly opts: GlobalOptions) {}
  info(msg: string): void { if (!this.opts.quiet) process.stderr.write(msg + '\n'); }
  verbose(msg: string): void { if (this.opts.verbose) process.stderr.write(msg + '\n'); }
  warn(msg: string): void { process.stderr.write(`warning: ${msg}\n`); }
  /** Progress lines only on a TTY (or with -v), never into --json stdout. */
  progress(msg: string): void {
    if (this.opts.quiet || this.opts.progress === false) return;
    if (process.stderr.isTTY || this.opts.verbose) process.stderr.write(msg + '\n');
  }
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n');
}

/**
 * stdout in blocks of about 256 KiB instead of one write per line: a
 * 10,000-machine plan is 50 MB. Call flush() before anything goes to stderr
 * (so that the two keep their order in a shared log) and at the end.
 */
export class OutputBuffer {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly limit = 256 * 1024) {}
  write(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= this.limit) this.flush();
  }
  flush(): void {
    if (!this.parts.length) return;
    const text = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    this.parts = [];
    this.size = 0;
    process.stdout.write(text);
  }
}

export function printDiagnostics(diags: readonly Diagnostic[], format: 'text' | 'json' | 'github'): void {
  if (!diags.length && format !== 'json') return;
  const text = formatDiagnostics(diags, format);
  // GitHub Actions reads workflow commands from stdout
  if (format === 'json' || format === 'github') out(text);
  else process.stderr.write(text + '\n');
}

/**
 * The exit code of a command that works on several machines or targets:
 * 0 when none failed, 1 when all failed, 3 when some failed and the others
 * succeeded.
 */
export function fleetExitCode(counts: { readonly ok: number; readonly failed: number }): number {
  if (!counts.failed) return ExitCode.ok;
  return counts.ok ? ExitCode.partial : ExitCode.error;
}

/** Map any error to a message and exit code (docs/exit-codes.md). */
export function handleError(err: unknown, opts: GlobalOptions & { format?: 'text' | 'json' | 'github' }): number {
  if (err instanceof InvalidInputError) {
    printDiagnostics(err.diagnostics, opts.format ?? (opts.json ? 'json' : 'text'));
    if (!hasErrors(err.diagnostics)) process.stderr.write(`error: ${err.message}\n`);
    return ExitCode.error;
  }
  if (err instanceof GhostprepError) {
    if (opts.json) out(JSON.stringify({ ok: false, error: err.message }));
    process.stderr.write(`error: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`error: ${e?.message ?? String(err)}\n`);
  if (opts.verbose && e?.stack) process.stderr.write(e.stack + '\n');
  return ExitCode.error;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
