/**
 * Case generators: a valid-looking fleet (a profile chain built like
 * profiles/*.yaml, an inventory like examples/inventory.yaml, the fixture
 * root trees) plus a few mutations drawn from the rule classes of the
 * product's promises. A case is plain data (a list of named mutations), so
 * that fast-check shrinks it to the fewest mutations and a counterexample
 * reads as a sentence.
 */
import fc from 'fast-check';

/** Mutations of the input (profiles, inventory, host files they name): each is forbidden by a rule. */
export type InputMutation =
  | { readonly class: 'proto-key'; readonly key: '__proto__' | 'constructor' | 'prototype'; readonly where: 'vars' | 'parent-vars' | 'site' | 'inventory-vars' | 'machine-vars' | 'defaults-vars' | 'deep-vars'; readonly payload: 'target' | 'hostname' | 'plain' }
  | { readonly class: 'dup-target'; readonly how: 'same' | 'dot-slash' | 'nested' }
  | { readonly class: 'authkey-private'; readonly how: 'inline' | 'file' | 'user-inline' | 'user-file' }
  | { readonly class: 'source-special'; readonly kind: 'fifo' | 'devzero' | 'dir' | 'huge' }
  | { readonly class: 'file-path'; readonly path: string }
  | { readonly class: 'delete-path'; readonly path: string }
  | { readonly class: 'owner-range'; readonly owner: string; readonly field: 'owner' | 'group' }
  | { readonly class: 'special-mode'; readonly mode: string }
  | { readonly class: 'user-field'; readonly field: 'gecos' | 'home' | 'shell'; readonly bad: string }
  | { readonly class: 'dup-user' }
  | { readonly class: 'root-home' }
  | { readonly class: 'plaintext-password'; readonly dollar: boolean }
  | { readonly class: 'template-reach'; readonly expr: string; readonly into: 'hostname' | 'content' }
  | { readonly class: 'net-address'; readonly is: 'network' | 'broadcast' | 'gateway' }
  | { readonly class: 'net-gateway'; readonly is: 'network' | 'broadcast' }
  | { readonly class: 'bad-mac'; readonly mac: string }
  | { readonly class: 'bad-set-name'; readonly name: string }
  | { readonly class: 'yaml-bomb'; readonly where: 'profile' | 'inventory' }
  | { readonly class: 'deep-nesting'; readonly depth: number; readonly where: 'profile' | 'inventory' }
  | { readonly class: 'extends-broken'; readonly how: 'cycle' | 'missing' | 'self' };

/** Mutations of one machine's root tree; the machine may succeed if it handles them safely. */
export type TreeMutation =
  | { readonly class: 'tree-link-out'; readonly what: '/etc' | '/root/.ssh' | '/etc/ssh' | '/etc/hostname' | '/etc/shadow'; readonly style: 'absolute' | 'dotdot' }
  | { readonly class: 'tree-link-loop'; readonly what: '/etc/hostname' | '/etc/ssh' | '/root/.ssh' }
  | { readonly class: 'tree-special'; readonly kind: 'fifo' | 'socket'; readonly what: '/etc/hostname' | '/etc/hosts' | '/etc/machine-id' | '/etc/shadow' | '/etc/os-release' }
  | { readonly class: 'tree-wrong-type'; readonly kind: 'dir' | 'file'; readonly what: '/etc/hostname' | '/etc/ssh' | '/etc/passwd' | '/etc/shadow' | '/root/.ssh' | '/etc/machine-id' }
  | { readonly class: 'tree-immutable'; readonly what: '/etc/shadow' | '/etc/passwd' | '/etc/ssh' | '/etc/hostname' | '/root/.ssh' | '/etc' }
  | { readonly class: 'tree-readonly'; readonly what: '/etc/shadow' | '/etc' | '/etc/ssh' }
  | { readonly class: 'tree-missing'; readonly what: '/etc/shadow' | '/etc/passwd' | '/root/.ssh' | '/etc/ssh' | '/etc/machine-id' };

export interface FuzzCase {
  /** 10.<net>.0.0/24 is the machines' subnet. */
  readonly net: number;
  /** Fixture root tree of each machine (fixtures/rootfs/NAME). */
  readonly fixtures: readonly string[];
  /** Parents above the leaf profile (0-2), each found by `extends`. */
  readonly parents: number;
  /** -p the leaf profile file, or -p the profiles directory. */
  readonly pStyle: 'file' | 'dir';
  readonly hostKeys: ReadonlyArray<'ed25519' | 'ecdsa'>;
  readonly machineId: 'generate' | 'derive' | 'keep';
  readonly withPasswordHash: boolean;
  /** The profile's user: a new one, or root (which every guest has already). */
  readonly user: 'fzops' | 'root';
  /** The profile has a network section (its schema check catches some pollution by accident: not always there). */
  readonly network: boolean;
  readonly input: readonly InputMutation[];
  readonly trees: ReadonlyArray<{ readonly machine: number; readonly m: TreeMutation }>;
  /** Also run the CLI on this case (stdout/stderr of validate, plan, apply). */
  readonly cli: boolean;
}

export const FIXTURES = ['debian12', 'ubuntu2204', 'rocky9', 'alpine319', 'arch', 'opensuse155'] as const;

const protoKey = fc.record({
  class: fc.constant('proto-key' as const),
  key: fc.constantFrom('__proto__' as const, 'constructor' as const, 'prototype' as const),
  // vars of a leaf whose parent has vars too: the merge that once polluted Object.prototype
  where: fc.oneof({ arbitrary: fc.constant('vars' as const), weight: 4 }, fc.constantFrom('parent-vars' as const, 'site' as const, 'inventory-vars' as const, 'machine-vars' as const, 'defaults-vars' as const, 'deep-vars' as const)),
  payload: fc.oneof({ arbitrary: fc.constant('target' as const), weight: 2 }, fc.constantFrom('hostname' as const, 'plain' as const)),
});

export const inputMutation: fc.Arbitrary<InputMutation> = fc.oneof(
  { arbitrary: protoKey, weight: 4 },
  fc.record({ class: fc.constant('dup-target' as const), how: fc.constantFrom('same' as const, 'dot-slash' as const, 'nested' as const) }),
  { arbitrary: fc.record({ class: fc.constant('authkey-private' as const), how: fc.constantFrom('inline' as const, 'file' as const, 'user-inline' as const, 'user-file' as const) }), weight: 2 },
  { arbitrary: fc.record({ class: fc.constant('source-special' as const), kind: fc.constantFrom('fifo' as const, 'devzero' as const, 'dir' as const, 'huge' as const) }), weight: 2 },
  { arbitrary: fc.record({ class: fc.constant('file-path' as const), path: fc.constantFrom('/', '/proc/fz', '/sys/fz', '/dev/fz', '/run/fz', '/proc', '/etc/hostname/fz', '/etc/passwd/fz/deeper', '/opt/out/fz', '/etc/..', '/etc/../../fz') }), weight: 2 },
  fc.record({ class: fc.constant('delete-path' as const), path: fc.constantFrom('/', '/proc', '/sys/kernel', '/dev', '/etc/hostname/fz', '/opt/out/hostfile', '/..') }),
  fc.record({ class: fc.constant('owner-range' as const), owner: fc.constantFrom('4294967295', '4294967296', '99999999999', '-1', '1e3', '0x10'), field: fc.constantFrom('owner' as const, 'group' as const) }),
  fc.record({ class: fc.constant('special-mode' as const), mode: fc.constantFrom('4755', '2755', '6755', '0777', '0666', '1777') }),
  fc.record({ class: fc.constant('user-field' as const), field: fc.constantFrom('gecos' as const, 'home' as const, 'shell' as const), bad: fc.constantFrom('\r', '\n', ':', 'a\rb', 'x:0:0') }),
  fc.record({ class: fc.constant('dup-user' as const) }),
  fc.record({ class: fc.constant('root-home' as const) }),
  fc.record({ class: fc.constant('plaintext-password' as const), dollar: fc.boolean() }),
  { arbitrary: fc.record({ class: fc.constant('template-reach' as const), expr: fc.constantFrom('{{machine.constructor}}', '{{machine.constructor.name}}', '{{vars.__proto__}}', '{{vars.constructor.constructor}}', '{{machine.__proto__.toString}}', '{{log machine}}', '{{machine}}', '{{site.dns}}', '{{site}}', '{{lookup machine "constructor"}}', '{{#with machine.constructor}}{{name}}{{/with}}'), into: fc.constantFrom('hostname' as const, 'content' as const) }), weight: 2 },
  fc.record({ class: fc.constant('net-address' as const), is: fc.constantFrom('network' as const, 'broadcast' as const, 'gateway' as const) }),
  fc.record({ class: fc.constant('net-gateway' as const), is: fc.constantFrom('network' as const, 'broadcast' as const) }),
  fc.record({ class: fc.constant('bad-mac' as const), mac: fc.constantFrom('00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '33:33:00:00:00:01', '52:54:00:aa:bb', 'zz:54:00:aa:bb:cc') }),
  fc.record({ class: fc.constant('bad-set-name' as const), name: fc.constantFrom('eth 0', 'abcdefghijklmnop', '../x', 'a/b', '.', '..', 'eth\t0', 'lan:1') }),
  fc.record({ class: fc.constant('yaml-bomb' as const), where: fc.constantFrom('profile' as const, 'inventory' as const) }),
  fc.record({ class: fc.constant('deep-nesting' as const), depth: fc.constantFrom(20000, 100000), where: fc.constantFrom('profile' as const, 'inventory' as const) }),
  fc.record({ class: fc.constant('extends-broken' as const), how: fc.constantFrom('cycle' as const, 'missing' as const, 'self' as const) }),
);

export const treeMutation: fc.Arbitrary<TreeMutation> = fc.oneof(
  { arbitrary: fc.record({ class: fc.constant('tree-link-out' as const), what: fc.constantFrom('/etc' as const, '/root/.ssh' as const, '/etc/ssh' as const, '/etc/hostname' as const, '/etc/shadow' as const), style: fc.constantFrom('absolute' as const, 'dotdot' as const) }), weight: 3 },
  fc.record({ class: fc.constant('tree-link-loop' as const), what: fc.constantFrom('/etc/hostname' as const, '/etc/ssh' as const, '/root/.ssh' as const) }),
  { arbitrary: fc.record({ class: fc.constant('tree-special' as const), kind: fc.constantFrom('fifo' as const, 'socket' as const), what: fc.constantFrom('/etc/hostname' as const, '/etc/hosts' as const, '/etc/machine-id' as const, '/etc/shadow' as const, '/etc/os-release' as const) }), weight: 2 },
  { arbitrary: fc.record({ class: fc.constant('tree-wrong-type' as const), kind: fc.constantFrom('dir' as const, 'file' as const), what: fc.constantFrom('/etc/hostname' as const, '/etc/ssh' as const, '/etc/passwd' as const, '/etc/shadow' as const, '/root/.ssh' as const, '/etc/machine-id' as const) }), weight: 2 },
  { arbitrary: fc.record({ class: fc.constant('tree-immutable' as const), what: fc.constantFrom('/etc/shadow' as const, '/etc/passwd' as const, '/etc/ssh' as const, '/etc/hostname' as const, '/root/.ssh' as const, '/etc' as const) }), weight: 2 },
  fc.record({ class: fc.constant('tree-readonly' as const), what: fc.constantFrom('/etc/shadow' as const, '/etc' as const, '/etc/ssh' as const) }),
  fc.record({ class: fc.constant('tree-missing' as const), what: fc.constantFrom('/etc/shadow' as const, '/etc/passwd' as const, '/root/.ssh' as const, '/etc/ssh' as const, '/etc/machine-id' as const) }),
);

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.record({
  net: fc.integer({ min: 1, max: 250 }),
  // one or two machines (a third finds nothing two do not, and costs a third more)
  fixtures: fc.array(fc.constantFrom(...FIXTURES), { minLength: 1, maxLength: 2 }),
  parents: fc.integer({ min: 0, max: 2 }),
  pStyle: fc.constantFrom('file' as const, 'dir' as const),
  hostKeys: fc.subarray(['ed25519', 'ecdsa'] as const, { minLength: 1 }),
  machineId: fc.constantFrom('generate' as const, 'derive' as const, 'keep' as const),
  withPasswordHash: fc.boolean(),
  user: fc.constantFrom('fzops' as const, 'root' as const),
  network: fc.boolean(),
  input: fc.array(inputMutation, { maxLength: 2 }),
  trees: fc.array(fc.record({ machine: fc.nat({ max: 1 }), m: treeMutation }), { maxLength: 2 }),
  // shrinks towards 0: a counterexample drops the CLI runs unless it needs them
  cli: fc.nat({ max: 49 }).map((n) => n === 49),
}).map((c) => ({ ...c, trees: c.trees.map((t) => ({ ...t, machine: t.machine % c.fixtures.length })) }));

/** One line per mutation, for counterexample reports. */
export function describeCase(c: FuzzCase): string {
  const lines = [
    `${c.fixtures.length} machine(s) on ${c.fixtures.join(', ')}; profile chain of ${c.parents + 1} (-p ${c.pStyle}); hostKeys ${c.hostKeys.join(',')}; machineId ${c.machineId}${c.network ? '' : '; no network section'}; user ${c.user}${c.withPasswordHash ? ' with a password hash' : ''}`,
    ...c.input.map((m) => `input: ${JSON.stringify(m)}`),
    ...c.trees.map((t) => `tree of machine ${t.machine}: ${JSON.stringify(t.m)}`),
  ];
  return lines.join('\n');
}

/** The rule classes a case exercises (for the known-open table and the per-class counts). */
export function classesOf(c: FuzzCase): string[] {
  return [...new Set([
    ...c.input.map((m) => m.class), ...c.trees.map((t) => t.m.class),
    // a grandparent found as NAME.yaml next to the profile given with -p
    ...(c.pStyle === 'file' && c.parents === 2 ? ['extends-via-file'] : []),
  ])];
}
