#!/usr/bin/env node
/**
 * `npm test`'s first step (pretest): the Debian packages the tests need, as
 * listed in .ci/apt-packages.d/*.txt (one package a line, `#` comments).
 *
 * All installed: nothing to do (one dpkg-query, a few milliseconds). Some
 * missing, as root on Debian/Ubuntu: `apt-get update` and `apt-get install`
 * of the missing ones. Some missing otherwise (not root, or no apt-get/dpkg):
 * one message that lists them with the command that installs them, and a
 * non-zero exit. GHOSTPREP_TEST_DEPS=skip runs the tests without the check
 * (the tests that need a missing package then fail). A checkout without
 * node_modules gets `npm ci` too, as `npm start` does.
 *
 * The decisions are plain functions of their inputs (the lists, dpkg-query's
 * output, root or not, apt-get or not), exported for the unit tests
 * (test/unit/test-deps.test.ts); main() does the I/O.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LISTS_DIR = path.join(REPO, '.ci', 'apt-packages.d');

/** The packages of list texts, in order, each once: `#` starts a comment, blank lines are skipped. */
export function parsePackageLists(texts) {
  const out = [];
  for (const text of texts) {
    for (const line of text.split('\n')) {
      for (const word of line.replace(/#.*/, '').trim().split(/\s+/)) if (word && !out.includes(word)) out.push(word);
    }
  }
  return out;
}

/** The packages named by every .ci/apt-packages.d/*.txt, in file-name order. */
export function readPackageLists(dir = LISTS_DIR) {
  const files = readdirSync(dir).filter((n) => n.endsWith('.txt')).sort();
  return parsePackageLists(files.map((f) => readFileSync(path.join(dir, f), 'utf8')));
}

/** The format the dpkg-query of main() prints: one `PACKAGE<tab>STATUS` line per package (and architecture) it knows. */
export const DPKG_FORMAT = '${Package}\t${Status}\n';

/**
 * Installed packages, from dpkg-query's output in DPKG_FORMAT. Installed means
 * the status `install ok installed` (dpkg's `ii`); a package removed but for
 * its configuration (`deinstall ok config-files`), half-installed or unknown
 * to dpkg is not. A multi-arch package is installed when any of its lines says so.
 */
export function installedPackages(dpkgOutput) {
  const out = new Set();
  for (const line of dpkgOutput.split('\n')) {
    const [name, status] = line.split('\t');
    if (name && status?.trim().split(/\s+/)[2] === 'installed') out.add(name.replace(/:.*/, ''));
  }
  return out;
}

/** `wanted` minus `installed`, in the order of `wanted`. */
export function missingPackages(wanted, installed) {
  return wanted.filter((p) => !installed.has(p));
}

/**
 * What to do about `missing`, given whether we are root and whether this is a
 * Debian-like machine (dpkg-query and apt-get found): 'ready' (nothing
 * missing), 'install' (root on Debian) or 'refuse' with the message.
 */
export function decide({ missing, root, debian }) {
  if (!missing.length) return { action: 'ready' };
  if (root && debian) return { action: 'install' };
  return { action: 'refuse', message: refusal(missing, debian ? 'not-root' : 'not-debian') };
}

/** The one message when packages are missing and this run cannot install them. */
export function refusal(missing, why) {
  const list = missing.join(' ');
  const lines = [
    `npm test: ${missing.length} Debian package${missing.length === 1 ? '' : 's'} the tests need ${missing.length === 1 ? 'is' : 'are'} missing: ${list}`,
    why === 'not-root'
      ? `Install ${missing.length === 1 ? 'it' : 'them'} as root (npm test does so itself when run as root):\n  sudo apt-get update && sudo apt-get install --no-install-recommends ${list}`
      : `This machine has no dpkg/apt-get: on Debian or Ubuntu, as root, install ${missing.length === 1 ? 'it' : 'them'} with\n  apt-get update && apt-get install --no-install-recommends ${list}\nor install the equivalent packages with this system's package manager.`,
    'GHOSTPREP_TEST_DEPS=skip npm test runs the tests without this check (those that need a missing package fail).',
  ];
  return lines.join('\n');
}

/** dpkg-query's view of `packages`; null when there is no dpkg-query (not Debian). */
function queryDpkg(packages) {
  const r = spawnSync('dpkg-query', ['-W', `-f=${DPKG_FORMAT}`, ...packages], { encoding: 'utf8' });
  if (r.error) return null;
  return r.stdout; // exit 1 and a line on stderr for packages dpkg does not know: they are missing
}

/** Whether `cmd` is an executable in PATH. */
function hasCommand(cmd) {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try { accessSync(path.join(dir || '.', cmd), fsConstants.X_OK); return true; } catch { return false; }
  });
}

function main() {
  const code = process.env.GHOSTPREP_TEST_DEPS === 'skip' ? 0 : debianPackages();
  if (code !== 0 || existsSync(path.join(REPO, 'node_modules', '.package-lock.json'))) return code;
  console.error('npm test: installing the npm dependencies (npm ci)');
  return spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: REPO, stdio: 'inherit' }).status ?? 1;
}

function debianPackages() {
  const wanted = readPackageLists();
  const status = () => queryDpkg(wanted);
  const before = status();
  const missing = before === null ? wanted : missingPackages(wanted, installedPackages(before));
  const verdict = decide({ missing, root: process.getuid?.() === 0, debian: before !== null && hasCommand('apt-get') });
  if (verdict.action === 'ready') return 0;
  if (verdict.action === 'refuse') {
    console.error(verdict.message);
    return 1;
  }
  console.error(`npm test: installing the Debian packages the tests need: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
    // apt-get's output is kept, and its end printed on failure: dpkg names the package whose script failed there
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'pipe', 'inherit'], env, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      const tail = (r.stdout ?? '').trim().split('\n').slice(-25).join('\n');
      if (tail) console.error(`apt-get ${args[0]}, last lines of its output:\n${tail}`);
      console.error(`npm test: apt-get ${args[0]} failed (exit ${r.status ?? r.signal}); the tests need: ${missing.join(' ')}`);
      return 1;
    }
  }
  const still = missingPackages(wanted, installedPackages(status() ?? ''));
  if (still.length) {
    console.error(`npm test: still missing after apt-get install: ${still.join(' ')}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) process.exitCode = main();
