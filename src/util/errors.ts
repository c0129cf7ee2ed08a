/**
 * The few error classes ghostprep raises. Each maps to one exit code in one
 * place (cli/common.ts), so commands never pick exit codes themselves.
 */
import type { Diagnostic } from '../core/diagnostic.js';

export const ExitCode = {
  ok: 0,
  error: 1,
  changes: 2,
  partial: 3,
  missingTool: 4,
  duplicates: 5,
} as const;

export class GhostprepError extends Error {
  readonly exitCode: number = ExitCode.error;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input did not validate: carries every diagnostic, not just the first. */
export class InvalidInputError extends GhostprepError {
  constructor(readonly diagnostics: readonly Diagnostic[], message = 'invalid input') {
    super(message);
  }
}

/** A required external tool is missing; the message says how to install it. */
export class MissingToolError extends GhostprepError {
  override readonly exitCode = ExitCode.missingTool;
  constructor(readonly tool: string, readonly install: string) {
    super(`${tool} not found: ${install}`);
  }
}

/** Something in the guest (or on the host) prevents the operation for one machine. */
export class GuestError extends GhostprepError {
  constructor(message: string, readonly path?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
