/** Quoting for generated bash and POSIX sh scripts. Pure. */
import { GhostprepError } from '../../util/errors.js';

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** One shell word: bare when it cannot be misread, else in single quotes. */
export function shQuote(word: string): string {
  if (word !== '' && SAFE.test(word)) return word;
  // "…" with escapes when the word holds $ or a backquote: the same meaning, and shellcheck does not
  // suspect a forgotten expansion (SC2016) as it does for '$…'
  if (/[$`]/.test(word)) return `"${word.replace(/[\\$"`]/g, '\\$&')}"`;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A bash array literal: `(a 'b c')`. */
export function bashArray(words: readonly string[]): string {
  return `(${words.map(shQuote).join(' ')})`;
}

/** `#SBATCH` values are read by sbatch without a shell: allow only what cannot be split or misread. */
export function checkDirectiveValue(option: string, value: string): string {
  if (!/^[A-Za-z0-9_.:,=+@%/-]+$/.test(value)) throw new GhostprepError(`--${option} "${value}": only letters, digits and _.:,=+@%/- are allowed in an #SBATCH value`);
  return value;
}
