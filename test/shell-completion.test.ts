// The completion scripts in completions/: bash registers itself and completes
// subcommands, vault commands and option values; fish answers `complete -C`;
// zsh's parses; and each script knows every flag and subcommand of --help.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { run } from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');
const DIR = path.join(REPO, 'completions');
const BASH = path.join(DIR, 'tsagent.bash');
const ZSH = path.join(DIR, '_tsagent');
const FISH = path.join(DIR, 'tsagent.fish');

const env = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C', LC_ALL: 'C' };

function tool(t: { skip: (m: string) => void }, name: string): string | undefined {
  const p = [`/usr/bin/${name}`, `/bin/${name}`].find((x) => fs.existsSync(x));
  if (!p && process.env.CI) throw new Error(`${name} is required on CI`);
  if (!p) t.skip(`${name} not installed`);
  return p;
}

/** Completions bash offers for each command line (the last word being completed), in one bash. */
async function bashComplete(bash: string, cases: string[][]): Promise<string[][]> {
  let script = `. '${BASH}'\n`;
  for (const words of cases) {
    const q = words.map((w) => `'${w}'`).join(' ');
    script += `COMP_WORDS=(${q}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _tsagent; printf '%s\\n' "\${COMPREPLY[@]}" @@\n`;
  }
  const r = await run(bash, ['-c', script], { env });
  assert.equal(r.stderr, '');
  return split(r.stdout);
}

/** fish's answers to `complete -C LINE` for each line, in one fish. */
async function fishComplete(fish: string, lines: string[]): Promise<string[][]> {
  const script =
    `source '${FISH}'\n` +
    lines.map((l) => `complete -C '${l}' | string replace -r '\\t.*' ''; echo @@\n`).join('');
  const r = await run(fish, ['--no-config', '-c', script], { env });
  assert.equal(r.stderr, '');
  return split(r.stdout);
}

function split(out: string): string[][] {
  return out
    .split('@@\n')
    .slice(0, -1)
    .map((block) => block.split('\n').filter(Boolean).sort());
}

const CASES: [string[], string[]][] = [
  [['tsagent', 'vau'], ['vault']],
  [['tsagent', 'vault', 'gen'], ['generate']],
  [
    ['tsagent', 'vault', 'generate', '-t', ''],
    ['ecdsa', 'ed25519', 'mldsa44-ed25519', 'rsa'],
  ],
  [
    ['tsagent', '-E', ''],
    ['md5', 'sha256'],
  ],
  [
    ['tsagent', 'init', ''],
    ['bash', 'fish', 'zsh'],
  ],
  [['tsagent', 'init', 'bash', '--lock-a'], ['--lock-after']],
  [['tsagent', 'status', '-'], ['--json']],
  [['tsagent', '--vault', '/x', 'vault', '--passphrase-fd', '3', 'pas'], ['passwd']],
  [['tsagent', 'vault', 'passwd', '--kdf-m'], ['--kdf-memory']],
  [
    ['tsagent', 'vault', 'set', 'k', '--no-'],
    ['--no-confirm', '--no-confirm-forwarded', '--no-confirm-window', '--no-local-only'],
  ],
  [
    ['tsagent', 'log', '--f'],
    ['--file', '--follow'],
  ],
  [['tsagent', '--max'], ['--max-connections']],
];

/**
 * Every flag and subcommand of the man pages, which test/man-pages.test.ts
 * checks against --help: flags are their .Fl macros, subcommands their ".It Cm" entries.
 */
function cliWords(): string[] {
  const words = new Set<string>();
  for (const page of ['tsagent.1', 'tsagent-vault.1', 'tsagent-log.1', 'tsagent-add.1']) {
    const src = fs.readFileSync(path.join(REPO, 'man', page), 'utf8').replace(/\\&/g, '');
    for (const m of src.matchAll(/^\.It Cm (\S+)/gm)) words.add(m[1]);
    for (const line of src.split('\n')) {
      if (!line.startsWith('.')) continue;
      const tokens = line.split(/\s+/);
      tokens.forEach((tok, i) => {
        if (tok !== 'Fl' || !tokens[i + 1]) return;
        const arg = tokens[i + 1];
        if (arg.startsWith('-')) words.add('-' + arg);
        else if (/^[A-Za-z]+$/.test(arg) && !/^[A-Z][a-z]/.test(arg))
          for (const c of arg) words.add('-' + c);
      });
    }
  }
  return [...words];
}

describe('completion scripts', () => {
  it('bash: sourcing registers the completion, which completes words and values', async (t) => {
    const bash = tool(t, 'bash');
    if (!bash) return;
    const r = await run(bash, ['-c', `. '${BASH}'; complete -p tsagent`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'complete -F _tsagent tsagent');
    const got = await bashComplete(
      bash,
      CASES.map(([words]) => words),
    );
    CASES.forEach(([words, want], i) => assert.deepEqual(got[i], want, words.join(' ')));
  });

  it('fish: complete -C gives the same answers', async (t) => {
    const fish = tool(t, 'fish');
    if (!fish) return;
    const got = await fishComplete(
      fish,
      CASES.map(([words]) => words.join(' ')),
    );
    CASES.forEach(([words, want], i) => assert.deepEqual(got[i], want, words.join(' ')));
  });

  it('zsh: the completion function parses and is a #compdef for tsagent', async (t) => {
    const zsh = tool(t, 'zsh');
    if (!zsh) return;
    assert.match(fs.readFileSync(ZSH, 'utf8'), /^#compdef tsagent\n/);
    const r = await run(zsh, ['-n', ZSH], { env });
    assert.equal(r.code, 0, r.stderr);
    // Autoloaded from $fpath (as compinit does), it defines _tsagent without errors.
    const load = await run(
      zsh,
      ['-fc', `fpath=('${DIR}' $fpath); autoload -Uz +X _tsagent && whence -w _tsagent`],
      { env },
    );
    assert.equal(load.stderr, '');
    assert.match(load.stdout, /_tsagent: function/);
  });

  it('every script knows every subcommand and flag of --help', async () => {
    const words = cliWords();
    assert.ok(words.includes('--passphrase-fd') && words.includes('generate'), words.join(' '));
    for (const file of [BASH, ZSH, FISH]) {
      const text = fs.readFileSync(file, 'utf8');
      const missing = words.filter((w) => {
        if (w.startsWith('--'))
          return (
            !new RegExp(`(^|[\\s'"({|,*-])-${w.slice(1)}\\b`).test(text) &&
            !text.includes(`-l ${w.slice(2)}`)
          );
        if (w.startsWith('-'))
          return (
            !new RegExp(`(^|[\\s'"({|,*])${w}\\b`).test(text) && !text.includes(`-s ${w.slice(1)}`)
          );
        return !new RegExp(`\\b${w}\\b`).test(text);
      });
      assert.deepEqual(missing, [], path.basename(file));
    }
  });
});
