import { expect } from 'chai';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { operations } from '../../src/operations/index.js';
import { HELPERS } from '../../src/template/helpers.js';
import { REPO } from '../helpers/rootfs.js';

const read = (file: string): string => readFileSync(path.join(REPO, file), 'utf8');
const README = read('README.md');

interface CommandHelp { name: string; text: string }
interface Generator {
  generateDocs(commands?: CommandHelp[]): Promise<Map<string, string>>;
  commandHelp(): CommandHelp[];
}
const generator = (): Promise<Generator> => import(pathToFileURL(path.join(REPO, 'scripts/gen-docs.mjs')).href) as Promise<Generator>;
/** Every command's --help, run once for all the tests below (about 20 CLI processes). */
let helps: Promise<CommandHelp[]> | undefined;
const commandHelp = (): Promise<CommandHelp[]> => (helps ??= generator().then((g) => g.commandHelp()));

/** Every markdown file of the manual and the contributor guide. */
function manual(): string[] {
  const out = ['README.md', 'CONTRIBUTING.md'];
  const walk = (dir: string): void => {
    for (const name of readdirSync(path.join(REPO, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(path.join(REPO, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) out.push(rel);
    }
  };
  walk('docs');
  return out;
}

/** The anchors GitHub gives a markdown file's headings. */
function anchors(file: string): string[] {
  if (!file.endsWith('.md')) return [];
  const text = read(file).replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
}

describe('README', () => {
  it('opens with exactly the two set-up commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(README)![1]!;
    expect(firstBlock.split('\n').filter(Boolean).map((l) => l.split('#')[0]!.trim())).to.deep.equal(['npm start', 'npm test']);
  });
  it('stays a short user guide (at most 250 lines) with a Security section linking to the manual', () => {
    expect(README.split('\n').length).to.be.at.most(250);
    expect(README).to.match(/^## Security$/m);
    expect(README).to.include('(docs/security.md)');
  });
});

describe('manual', () => {
  it('is in sync with the CLI help and the operation records (run `npm run docs` when this fails)', async function () {
    this.timeout(180_000);
    const generated = await (await generator()).generateDocs(await commandHelp());
    expect([...generated.keys()]).to.include.members(['docs/commands.md', 'docs/operations.md']);
    for (const [file, content] of generated) expect(read(file), `${file} differs from what npm run docs writes`).to.equal(content);
  });

  for (const kind of ['customize', 'seal'] as const) {
    it(`documents every registered ${kind} operation in its table, and nothing else`, () => {
      const page = read('docs/operations.md');
      const block = new RegExp(`<!-- operations: ${kind} -->\\n([\\s\\S]*?)<!-- /operations -->`).exec(page);
      expect(block, `docs/operations.md has an operations: ${kind} table`).to.not.equal(null);
      const rows = [...block![1]!.matchAll(/^\|(?: \d+ \|)? `([a-z-]+)` \| (on|off) \|(?: [^|]* \|)? (.+) \|$/gm)].map((m) => [m[1], m[2] === 'on', m[3]!.replace(/\\\|/g, '|')]);
      const registry = operations.list().filter((o) => o.kind === kind).map((o) => [o.name, o.defaultEnabled, o.description]);
      expect([...rows].sort((a, b) => String(a[0]).localeCompare(String(b[0])))).to.deep.equal(registry);
    });
  }

  it('documents every template helper', () => {
    const page = read('docs/templates.md');
    for (const h of HELPERS) expect(page).to.include(`| \`${h.name}\` |`);
  });

  it('gives every command its own section with its help and an example', async function () {
    this.timeout(180_000);
    const page = read('docs/commands.md');
    const commands = (await commandHelp()).filter((c) => c.name && !c.name.includes(' '));
    expect(commands.length).to.be.greaterThan(4);
    for (const { name } of commands) {
      expect(page, `docs/commands.md section for ${name}`).to.match(new RegExp(`^## ${name}$`, 'm'));
      expect(page, `docs/commands.md help of ${name}`).to.include(`<!-- help: ${name} -->`);
      expect(page, `docs/commands.md example for ${name}`).to.include(`ghostprep ${name}`);
    }
  });

  it('has an index that links every page, and no link to a page or heading that does not exist', () => {
    const index = read('docs/README.md');
    for (const file of manual().filter((f) => f.startsWith('docs/') && f !== 'docs/README.md')) {
      expect(index, `docs/README.md links ${file}`).to.include(`(${path.relative('docs', file)}`);
    }
    for (const file of manual()) {
      for (const m of read(file).matchAll(/\]\(([^)#\s]*)(?:#([^)\s]*))?\)/g)) {
        const [, target, anchor] = m;
        if (/^[a-z]+:/.test(target!)) continue;
        const linked = target ? path.join(path.dirname(file), target) : file;
        expect(existsSync(path.join(REPO, linked)), `${file} links ${target}`).to.equal(true);
        if (anchor) expect(anchors(linked), `${file} links ${target}#${anchor}`).to.include(anchor);
      }
    }
  });

  it('speaks of the product, not of how it was developed', () => {
    const history = /session [0-9]|issue [0-9]|must-show|other agents|earlier today|the lead\b/i;
    for (const file of manual()) {
      read(file).split('\n').forEach((line, i) => expect(history.test(line), `${file}:${i + 1}: ${line}`).to.equal(false));
    }
  });
});
