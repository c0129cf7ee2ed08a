/**
 * Windows computer names: the NetBIOS name is at most 15 characters, and
 * Windows Setup refuses names with spaces, the characters
 * { | } ~ [ \ ] ^ ' : ; < = > ? @ ! " # $ % ` ( ) + / . , * & _, or only
 * digits. We accept the portable subset that is also a DNS label: letters,
 * digits and inner hyphens, not all digits.
 */
export const MAX_COMPUTER_NAME = 15;

/** A problem with `name` as a Windows computer name, or undefined when it is fine. */
export function computerNameProblem(name: string): string | undefined {
  if (!name) return 'Windows computer name is empty';
  if (name.length > MAX_COMPUTER_NAME) return `Windows computer name "${name}" is ${name.length} characters long; NetBIOS allows at most ${MAX_COMPUTER_NAME} (set windows.computerName to a shorter name)`;
  if (!/^[A-Za-z0-9-]+$/.test(name)) {
    const bad = [...new Set(name.replace(/[A-Za-z0-9-]/g, ''))].map((c) => JSON.stringify(c)).join(' ');
    return `Windows computer name ${JSON.stringify(name)} contains ${bad}: only letters, digits and hyphens are NetBIOS- and DNS-safe`;
  }
  if (/^-|-$/.test(name)) return `Windows computer name "${name}" starts or ends with a hyphen`;
  if (/^[0-9]+$/.test(name)) return `Windows computer name "${name}" is only digits; Windows refuses that`;
  return undefined;
}

/** The NetBIOS form Windows stores under ComputerName: upper case. */
export function netbiosName(name: string): string {
  return name.toUpperCase();
}
