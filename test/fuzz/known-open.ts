/**
 * Rule classes whose holes are known and not closed yet, with the invariants
 * each is known to break. A violation in a case that exercises one of these
 * classes is counted and printed, but does not fail the run; any other
 * violation does. THE single place to edit: when a class is closed, delete
 * its line, and the fuzzer holds it to every invariant again
 * (`npm run fuzz -- --strict` ignores this table altogether).
 */
import type { InvariantName } from './invariants.js';

export const KNOWN_OPEN: Readonly<Record<string, readonly InvariantName[]>> = {
  // Prototype pollution through the merge of vars: validate passes, apply follows a polluted target.
  'proto-key': ['forbidden-input-refused', 'prototypes-intact', 'outside-untouched', 'machine-atomic'],
  // Two machines with one target: validate passes, one tree is customized twice.
  'dup-target': ['forbidden-input-refused', 'machine-atomic'],
  // A private key as authorized key: accepted, printed by plan, installed.
  'authkey-private': ['forbidden-input-refused', 'no-secret-in-output'],
  // source: a FIFO blocks validate, /dev/zero grows it without bound, a directory or a huge file fails apply half-way.
  'source-special': ['forbidden-input-refused', 'no-hang', 'bounded-reads', 'machine-atomic'],
  // Paths /, under /proc, /sys, /dev, /run, under a regular file; deletes of /: accepted, fail half-way.
  'file-path': ['forbidden-input-refused', 'machine-atomic'],
  'delete-path': ['forbidden-input-refused', 'machine-atomic'],
  // Owners out of range or unknown: fail after the machine is half-written.
  'owner-range': ['forbidden-input-refused', 'machine-atomic'],
  // setuid/setgid and world-writable modes without allowSpecialModes.
  'special-mode': ['forbidden-input-refused'],
  // Users: CR in passwd fields, duplicate users, a non-root user with /root as home.
  'user-field': ['forbidden-input-refused'],
  'dup-user': ['forbidden-input-refused'],
  'root-home': ['forbidden-input-refused'],
  // A plaintext password as passwordHash: accepted with a $, else refused with a message that prints it.
  'plaintext-password': ['forbidden-input-refused', 'no-secret-in-output'],
  // Templates: the log helper, objects rendered as strings.
  'template-reach': ['forbidden-input-refused'],
  // Network sense: an address equal to the network, broadcast or gateway address; a gateway equal to network or broadcast.
  'net-address': ['forbidden-input-refused'],
  'net-gateway': ['forbidden-input-refused'],
  // MACs: all-zero accepted.
  'bad-mac': ['forbidden-input-refused'],
  // set-name "." or "..".
  'bad-set-name': ['forbidden-input-refused'],
  // YAML nested 20,000 deep: "Maximum call stack size exceeded" as the message.
  'deep-nesting': ['diagnostics-located'],
  // A grandparent found as NAME.yaml next to the profile: its settings vanish.
  'extends-via-file': ['clean-input-applies', 'extends-complete'],
  // Hostile trees: the machine fails after hostname, machine-id, keys or users are written;
  // a guest whose /etc/shadow is missing, a directory or a link out of the root gets an existing
  // user's hash in /etc/passwd, which plan shows.
  'tree-link-out': ['machine-atomic', 'no-secret-in-output'],
  'tree-special': ['machine-atomic'],
  'tree-wrong-type': ['machine-atomic', 'no-secret-in-output'],
  'tree-immutable': ['machine-atomic'],
  'tree-missing': ['machine-atomic', 'no-secret-in-output'],
};

export function isKnownOpen(classes: readonly string[], invariant: InvariantName): string | undefined {
  return classes.find((c) => KNOWN_OPEN[c]?.includes(invariant));
}
