/**
 * Which permission modes are "special": setuid, setgid (on files) and
 * world-writable (files, and directories without the sticky bit). A profile
 * must say `allowSpecialModes: true` to write them; validate refuses the
 * modes a profile states, and preflight every mode a plan would write.
 */
export function specialModeProblem(mode: number, dir: boolean, allowSpecialModes: boolean | undefined): string | undefined {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) return `mode ${Number.isInteger(mode) ? mode.toString(8) : String(mode)} is not a permission mode (0000..7777)`;
  if (allowSpecialModes) return undefined;
  const what = mode & 0o4000 ? 'setuid' : mode & 0o2000 && !dir ? 'setgid' : mode & 0o002 && !(dir && mode & 0o1000) ? 'world-writable' : undefined;
  if (!what) return undefined;
  return `mode ${'0' + mode.toString(8).padStart(3, '0')} makes it ${what}; set allowSpecialModes: true in the profile to allow that`;
}
