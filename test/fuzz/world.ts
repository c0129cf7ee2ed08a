/**
 * A case made real in a directory of its own:
 *
 *   in/profiles/*.yaml, in/inventory.yaml   the input (written as YAML flow text)
 *   in/keys, in/src, in/secret.txt          host files the input names
 *   targets/NAME/                           each machine's root tree (a fixture copy, then made hostile)
 *   outside/                                host files next to the targets that hostile links and
 *                                           polluted targets point at: no byte of them may change
 *   state/, out/                            ghostprep's state dir, report and known_hosts
 *
 * The same function writes a counterexample's reproduction.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { copyFixture } from '../helpers/rootfs.js';
import type { EngineInput } from './engine.js';
import type { FuzzCase, InputMutation, TreeMutation } from './generate.js';

// ---------- a tiny YAML writer that can say anything, even "__proto__" ----------

export class YMap { constructor(public entries: Array<[string, Y]> = []) {}
  get(k: string): Y | undefined { return this.entries.find(([x]) => x === k)?.[1]; }
  set(k: string, v: Y): this { const e = this.entries.find(([x]) => x === k); if (e) e[1] = v; else this.entries.push([k, v]); return this; }
  add(k: string, v: Y): this { this.entries.push([k, v]); return this; }
}
/** Text written as is (anchors and aliases, deep nesting). */
export class YRaw { constructor(public text: string) {} }
export type Y = string | number | boolean | null | Y[] | YMap | YRaw;
const m = (o: Record<string, Y>): YMap => new YMap(Object.entries(o));

export function emit(y: Y, ind = ''): string {
  const next = ind + '  ';
  if (y instanceof YRaw) return y.text;
  if (y instanceof YMap) return y.entries.length ? `{\n${y.entries.map(([k, v]) => `${next}${JSON.stringify(k)}: ${emit(v, next)}`).join(',\n')}\n${ind}}` : '{}';
  if (Array.isArray(y)) return y.length ? `[\n${y.map((v) => next + emit(v, next)).join(',\n')}\n${ind}]` : '[]';
  return JSON.stringify(y);
}

// ---------- secrets the case hands to ghostprep ----------

let keyPair: { privateKey: string; publicKey: string } | undefined;
/** One real OpenSSH ed25519 key pair per process (its private half must never be echoed). */
export function fuzzKeyPair(scratch: string): { privateKey: string; publicKey: string } {
  if (!keyPair) {
    const file = path.join(scratch, 'fuzz-user-key');
    rmSync(file, { force: true }); rmSync(file + '.pub', { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fuzz@ghostprep', '-f', file], { stdio: 'ignore' });
    keyPair = { privateKey: readFileSync(file, 'utf8'), publicKey: readFileSync(file + '.pub', 'utf8').trim() };
  }
  return keyPair;
}

/**
 * The strings of a private key that must never appear in an output: its
 * base64 lines and its armour. An OpenSSH private key embeds its public key:
 * a line that happens to be part of the public key's base64 is not a secret.
 */
export function privateKeySecrets(pem: string, publicKey = ''): string[] {
  return [...pem.split('\n').map((l) => l.trim()).filter((l) => l.length >= 24 && !l.startsWith('-----') && !publicKey.includes(l)), 'PRIVATE KEY-----'];
}

function derived(c: FuzzCase, label: string, n: number): string {
  return createHash('sha256').update(JSON.stringify(c) + label).digest('base64url').replace(/[-_]/g, 'x').slice(0, n);
}

// ---------- the case on disk ----------

export interface World {
  readonly dir: string;
  readonly input: EngineInput;
  readonly machines: ReadonlyArray<{ name: string; root: string }>;
  /** Every tree ghostprep may write (the targets), for the per-machine check. */
  readonly targetsDir: string;
  /** Host paths that must stay byte-identical. */
  readonly sentinels: readonly string[];
  /** Strings that must appear in no output. */
  readonly secrets: string[];
  /** The merged vars of the profile chain rendered into /etc/fz-chain, when the chain is intact. */
  readonly chainContent: string;
  /** Paths made immutable (chattr +i), undone before the directory is removed. */
  readonly immutable: string[];
  /** Tree mutations that could not be made on this host (e.g. no chattr). */
  readonly skipped: string[];
}

const LEAF = 'fzleaf';

export function chainNames(c: FuzzCase): string[] {
  return [LEAF, ...Array.from({ length: c.parents }, (_, i) => `fzp${i + 1}`)];
}

export function buildWorld(c: FuzzCase, dir: string, scratch: string): World {
  const inDir = path.join(dir, 'in');
  const profDir = path.join(inDir, 'profiles');
  const targetsDir = path.join(dir, 'targets');
  const outside = path.join(dir, 'outside');
  for (const d of [profDir, path.join(inDir, 'keys'), path.join(inDir, 'src'), targetsDir, outside, path.join(dir, 'state'), path.join(dir, 'out')]) mkdirSync(d, { recursive: true });

  const keys = fuzzKeyPair(scratch);
  const hash = `$6$${derived(c, 'salt', 12)}$${derived(c, 'hash', 43)}${derived(c, 'hash2', 43)}`;
  const plaintext = `Pw${derived(c, 'plain', 14)}`;
  const siteSecret = `site-secret-${derived(c, 'site', 24)}`;
  const secrets = [hash, plaintext, siteSecret, ...privateKeySecrets(keys.privateKey, keys.publicKey)];

  // host files the input names
  writeFileSync(path.join(inDir, 'secret.txt'), siteSecret + '\n');
  writeFileSync(path.join(inDir, 'keys/id_fz'), keys.privateKey, { mode: 0o600 });
  writeFileSync(path.join(inDir, 'keys/id_fz.pub'), keys.publicKey + '\n');
  writeFileSync(path.join(inDir, 'src/ok.txt'), 'copied as is\n');
  writeFileSync(path.join(outside, 'hostfile'), 'a host file: must not change\n');
  mkdirSync(path.join(outside, 'optout'));
  writeFileSync(path.join(outside, 'optout/hostfile'), 'a host file behind /opt/out: must not change\n');

  // the profile chain: the top one carries the site, identity and network, the leaf the files
  const names = chainNames(c);
  const top = names[names.length - 1]!;
  const profiles = new Map<string, YMap>(names.map((n, i) => [n, m({ profile: n, ...(i < names.length - 1 && { extends: names[i + 1]! }), vars: m({ [`fz_${n}`]: n }) })]));
  const T = profiles.get(top)!;
  const L = profiles.get(LEAF)!;
  const net = c.net;
  // root-home and dup-user are about a second account: their user is a new one
  const userName = c.input.some((x) => x.class === 'root-home' || x.class === 'dup-user') ? 'fzops' : c.user;
  const user = userName === 'root'
    ? m({ name: 'root', passwordHash: c.withPasswordHash ? hash : '!', authorizedKeys: [keys.publicKey] })
    : m({ name: 'fzops', uid: 1601, groups: ['@admin'], shell: '/bin/sh', passwordHash: c.withPasswordHash ? hash : '!', authorizedKeys: [keys.publicKey] });
  const lan = m({ match: m({ macaddress: '{{machine.mac}}' }), 'set-name': 'lan', addresses: ['{{machine.ip}}'], routes: [m({ to: 'default', via: '{{site.gateway}}' })], nameservers: m({ addresses: '{{site.dns}}' }) });
  const site = m({ domain: 'fz.example.org', timezone: 'Europe/Berlin', gateway: `10.${net}.0.1`, dns: [`10.${net}.0.2`], ...(c.machineId === 'derive' && { secretFile: '../secret.txt' }) });
  T.set('site', site).set('machineId', c.machineId)
    .set('ssh', m({ hostKeys: [...c.hostKeys], authorizedKeys: m({ root: [keys.publicKey] }) }))
    .set('users', [user]).set('timezone', '{{site.timezone}}');
  if (c.network || c.input.some((x) => x.class === 'bad-set-name' || x.class === 'net-gateway' || x.class === 'net-address')) T.set('network', m({ version: 2, ethernets: m({ lan }) }));
  const files: Y[] = [
    m({ path: '/etc/fz-chain', content: names.map((n) => `{{vars.fz_${n}}}`).join(' ') + '\n', mode: '0644' }),
    m({ path: '/etc/fz-copied', source: '../src/ok.txt', mode: '0640' }),
  ];
  L.set('files', files);
  const deletes: Y[] = [];

  const nMachines = Math.max(c.fixtures.length, c.input.some((x) => x.class === 'dup-target') ? 2 : 0);
  const fixtures = Array.from({ length: nMachines }, (_, i) => c.fixtures[i] ?? 'debian12');
  const machineEntries = fixtures.map((_, i) => m({ name: `fz${i}`, mac: `52:54:00:${net.toString(16).padStart(2, '0')}:00:${(i + 1).toString(16).padStart(2, '0')}`, ip: `10.${net}.0.${11 + i}/24`, vars: m({ slot: i }) }));
  const invVars = m({ rack: 'r1' });
  const defaults = m({ profile: LEAF, vars: m({ dc: 'fz' }) });
  const inventoryExtra: Array<[string, Y]> = [];
  let needsVictim = false;
  let needsOptLink = false;

  const apply = (x: InputMutation): void => {
    switch (x.class) {
      case 'proto-key': {
        const payload: Y = x.payload === 'target' ? m({ target: `rootfs:${path.join(outside, 'victim')}` }) : x.payload === 'hostname' ? m({ hostname: 'polluted' }) : 'x';
        if (x.payload === 'target') needsVictim = true;
        const into = (map: YMap) => map.add(x.key, payload);
        if (x.where === 'vars') into(L.get('vars') as YMap);
        else if (x.where === 'parent-vars') into(T.get('vars') as YMap);
        else if (x.where === 'site') into(site);
        else if (x.where === 'inventory-vars') into(invVars);
        else if (x.where === 'machine-vars') into(machineEntries[0]!.get('vars') as YMap);
        else if (x.where === 'defaults-vars') into(defaults.get('vars') as YMap);
        else (L.get('vars') as YMap).add('deep', m({ a: m({ b: new YMap([[x.key, payload]]) }) }));
        break;
      }
      case 'dup-target': {
        const t0 = path.join(targetsDir, 'fz0');
        machineEntries[0]!.set('target', `rootfs:${t0}`);
        machineEntries[1]!.set('target', `rootfs:${x.how === 'same' ? t0 : x.how === 'dot-slash' ? path.join(targetsDir, '.') + '/./fz0/' : path.join(t0, 'home')}`);
        break;
      }
      case 'authkey-private': {
        const entry = x.how.endsWith('file') ? 'file:../keys/id_fz' : keys.privateKey;
        if (x.how.startsWith('user')) (user.get('authorizedKeys') as Y[]).push(entry);
        else (((T.get('ssh') as YMap).get('authorizedKeys') as YMap).get('root') as Y[]).push(entry);
        break;
      }
      case 'source-special': {
        const src = { fifo: '../src/fifo', devzero: '/dev/zero', dir: '../src', huge: '../src/huge.bin' }[x.kind];
        if (x.kind === 'fifo' && !existsSync(path.join(inDir, 'src/fifo'))) execFileSync('mkfifo', [path.join(inDir, 'src/fifo')]);
        if (x.kind === 'huge') { closeSync(openSync(path.join(inDir, 'src/huge.bin'), 'w')); truncateSync(path.join(inDir, 'src/huge.bin'), 40 * 1024 * 1024); }
        files.push(m({ path: '/etc/fz-special', source: src }));
        break;
      }
      case 'file-path': files.push(m({ path: x.path, content: 'fz\n' })); needsOptLink ||= x.path.startsWith('/opt/out'); break;
      case 'delete-path': deletes.push(x.path); needsOptLink ||= x.path.startsWith('/opt/out'); break;
      case 'owner-range': files.push(m({ path: '/etc/fz-owned', content: 'fz\n', [x.field]: x.owner })); break;
      case 'special-mode': files.push(m({ path: '/usr/local/bin/fz-special', content: '#!/bin/sh\n', mode: x.mode })); break;
      case 'user-field': user.set(x.field, x.field === 'gecos' ? `Fz ${x.bad} ops` : `/home/fz${x.bad}`); break;
      case 'dup-user': (T.get('users') as Y[]).push(m({ name: 'fzops', uid: 1602, shell: '/bin/sh' })); break;
      case 'root-home': user.set('home', '/root'); break;
      case 'plaintext-password': user.set('passwordHash', x.dollar ? `$${plaintext}` : plaintext); break;
      case 'template-reach':
        if (x.into === 'hostname') L.set('hostname', x.expr);
        else files.push(m({ path: '/etc/fz-template', content: `${x.expr}\n` }));
        break;
      case 'net-address': machineEntries[0]!.set('ip', `10.${net}.0.${{ network: 0, broadcast: 255, gateway: 1 }[x.is]}/24`); break;
      case 'net-gateway': site.set('gateway', `10.${net}.0.${x.is === 'network' ? 0 : 255}`); break;
      case 'bad-mac': machineEntries[0]!.set('mac', x.mac); break;
      case 'bad-set-name': lan.set('set-name', x.name); break;
      case 'yaml-bomb': {
        const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
        const text = `{${levels.map((l, i) => `${l}: &${l} [${Array(10).fill(i === 0 ? '"lol"' : `*${levels[i - 1]}`).join(',')}]`).join(', ')}}`;
        (x.where === 'profile' ? (L.get('vars') as YMap) : invVars).set('bomb', new YRaw(text));
        break;
      }
      case 'deep-nesting': (x.where === 'profile' ? (L.get('vars') as YMap) : invVars).set('deep', new YRaw('['.repeat(x.depth) + ']'.repeat(x.depth))); break;
      case 'extends-broken': {
        const p = x.how === 'self' ? T : T;
        p.set('extends', x.how === 'cycle' ? LEAF : x.how === 'missing' ? 'fzmissing' : top);
        break;
      }
    }
  };
  for (const x of c.input) apply(x);
  if (deletes.length) L.set('delete', deletes);

  for (const [n, p] of profiles) writeFileSync(path.join(profDir, `${n}.yaml`), `# fuzz profile ${n}\n${emit(p)}\n`);
  const inventory = new YMap([['defaults', defaults], ['vars', invVars], ['machines', machineEntries], ...inventoryExtra]);
  writeFileSync(path.join(inDir, 'inventory.yaml'), `# fuzz inventory\n${emit(inventory)}\n`);

  // the trees
  const machines = fixtures.map((f, i) => ({ name: `fz${i}`, root: copyFixture(f, path.join(targetsDir, `fz${i}`)) }));
  if (needsVictim) copyFixture('debian12', path.join(outside, 'victim'));
  if (needsOptLink) for (const t of machines) { mkdirSync(path.join(t.root, 'opt'), { recursive: true }); symlinkSync(path.join(outside, 'optout'), path.join(t.root, 'opt/out')); }
  const immutable: string[] = [];
  const skipped: string[] = [];
  for (const t of c.trees) {
    const machine = machines[t.machine % machines.length]!;
    try { mutateTree(machine.root, machine.name, t.m, outside, immutable); } catch (err) { skipped.push(`${machine.name} ${JSON.stringify(t.m)}: ${(err as Error).message.split('\n')[0]}`); }
  }

  const input: EngineInput = {
    profiles: [c.pStyle === 'dir' ? profDir : path.join(profDir, `${LEAF}.yaml`)],
    inventory: path.join(inDir, 'inventory.yaml'),
    target: `rootfs:${targetsDir}/{name}`,
    state: path.join(dir, 'state'),
    knownHosts: path.join(dir, 'out/known_hosts'),
  };
  return {
    dir, input, machines, targetsDir, sentinels: [inDir, outside], secrets, immutable, skipped,
    chainContent: names.join(' ') + '\n',
  };
}

function replaceWith(root: string, what: string, make: (p: string) => void): void {
  const p = path.join(root, what);
  mkdirSync(path.dirname(p), { recursive: true });
  rmSync(p, { recursive: true, force: true });
  make(p);
}

function mutateTree(root: string, name: string, t: TreeMutation, outside: string, immutable: string[]): void {
  const p = path.join(root, t.what);
  switch (t.class) {
    case 'tree-link-out': {
      // the guest's own file moves to the host side: following the link on the host would find it
      const host = path.join(outside, `${name}${t.what.replace(/\//g, '-')}`);
      if (existsSync(p)) cpSync(p, host, { recursive: true, verbatimSymlinks: true });
      else writeFileSync(host, 'host side\n');
      const depth = t.what.split('/').length - 1;
      replaceWith(root, t.what, (q) => symlinkSync(t.style === 'absolute' ? host : '../'.repeat(depth + 12) + host.slice(1), q));
      break;
    }
    case 'tree-link-loop': replaceWith(root, t.what, (q) => symlinkSync(path.basename(q), q)); break;
    case 'tree-special':
      replaceWith(root, t.what, (q) => t.kind === 'fifo'
        ? execFileSync('mkfifo', [q])
        : execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', q]));
      break;
    case 'tree-wrong-type':
      replaceWith(root, t.what, (q) => { if (t.kind === 'dir') { mkdirSync(q); writeFileSync(path.join(q, 'inside'), 'x\n'); } else writeFileSync(q, 'not a directory\n'); });
      break;
    case 'tree-immutable':
      if (!existsSync(p)) writeFileSync(p, 'x\n');
      execFileSync('chattr', ['+i', p], { stdio: 'ignore' });
      immutable.push(p);
      break;
    case 'tree-readonly': if (existsSync(p)) chmodSync(p, lstatSync(p).isDirectory() ? 0o555 : 0o444); break;
    case 'tree-missing': rmSync(p, { recursive: true, force: true }); break;
  }
}

/** Undo chattr +i and remove the case directory, in the background (the next case need not wait); `settled` awaits them all. */
export function removeWorld(w: Pick<World, 'dir' | 'immutable'>): void {
  for (const p of w.immutable) { try { execFileSync('chattr', ['-i', p], { stdio: 'ignore' }); } catch { /* gone */ } }
  pending.push(rm(w.dir, { recursive: true, force: true }).catch(() => {
    try { execFileSync('chattr', ['-R', '-i', w.dir], { stdio: 'ignore' }); } catch { /* best effort */ }
    rmSync(w.dir, { recursive: true, force: true });
  }));
}
const pending: Array<Promise<void>> = [];
export async function removalsSettled(): Promise<void> {
  while (pending.length) await pending.shift();
}
