// Passphrase prompts on a real terminal (tmux): no echo, clear wording, a
// progress indicator during the KDF on the terminal only, no colours; and
// SSH_ASKPASS / SSH_ASKPASS_REQUIRE as ssh-add honours them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mkTemp, rmTemp, run, sleep } from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const TMUX = ['/usr/bin/tmux', '/bin/tmux'].find((p) => fs.existsSync(p));
const SECRET = 'typed-secret-42';
// eslint-disable-next-line no-control-regex
const SGR = /\x1b\[[0-9;]*m/;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('passphrase prompts', () => {
  let dir: string;
  let sock: string;
  let vaultPath: string;
  let env: NodeJS.ProcessEnv;

  before(() => {
    dir = mkTemp('tsagent-prompt-');
    sock = path.join(dir, 'tmux.sock');
    vaultPath = path.join(dir, 'data', 'vault');
    env = { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8', TERM: 'xterm-256color' };
  });

  after(() => {
    if (TMUX) spawnSync(TMUX, ['-S', sock, 'kill-server'], { stdio: 'ignore' });
    rmTemp(dir);
  });

  const tmux = (...args: string[]) => {
    const r = spawnSync(TMUX!, ['-S', sock, ...args], { encoding: 'utf8', env });
    assert.equal(r.status, 0, `tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  /** Run `command` in a new tmux window on a real terminal; its raw output is logged. */
  function start(name: string, command: string): { screen: () => string; raw: () => string } {
    const log = path.join(dir, `${name}.log`);
    fs.writeFileSync(log, '');
    tmux(
      'new-session',
      '-d',
      '-s',
      name,
      '-x',
      '150',
      '-y',
      '40',
      `${command}; echo EXIT=$?; sleep 60`,
    );
    tmux('pipe-pane', '-o', '-t', name, `cat >> ${q(log)}`);
    return {
      screen: () => tmux('capture-pane', '-p', '-t', name),
      raw: () => fs.readFileSync(log, 'latin1'),
    };
  }

  async function waitScreen(screen: () => string, re: RegExp, what: string): Promise<string> {
    for (let i = 0; i < 150; i++) {
      const s = screen();
      if (re.test(s)) return s;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}; screen:\n${screen()}`);
  }

  it('vault init on a terminal: two prompts, nothing echoed, progress shown, no colour', async (t) => {
    if (!TMUX) {
      if (process.env.CI) throw new Error('tmux is required on CI (apt-get install tmux)');
      return t.skip('tmux not installed');
    }
    const cmd = `env -u DISPLAY -u SSH_ASKPASS NO_COLOR=1 ${q(process.execPath)} ${q(MAIN)} vault --vault ${q(vaultPath)} init --kdf-memory 1024 --kdf-time 1`;
    const w = start('init', cmd);
    await waitScreen(w.screen, /Enter new passphrase for the vault:/, 'the first prompt');
    tmux('send-keys', '-t', 'init', '-l', SECRET);
    tmux('send-keys', '-t', 'init', 'Enter');
    await waitScreen(w.screen, /Enter the same passphrase again:/, 'the second prompt');
    tmux('send-keys', '-t', 'init', '-l', SECRET);
    tmux('send-keys', '-t', 'init', 'Enter');
    const screen = await waitScreen(w.screen, /EXIT=\d+/, 'the end');
    assert.match(screen, /EXIT=0/, screen);
    assert.match(screen, /Created vault .*vault \(argon2id, 1024 KiB, t=1, p=1\)/);
    assert.ok(!screen.includes(SECRET), `the passphrase was echoed:\n${screen}`);
    await sleep(200);
    const raw = w.raw();
    assert.ok(!raw.includes(SECRET), 'the passphrase is not in the terminal output');
    assert.match(raw, /deriving key/, 'progress during the KDF on a terminal');
    assert.doesNotMatch(raw, SGR, 'no colour escapes');
  });

  it('no progress and no escapes when standard error is not a terminal', async () => {
    const r = await run(
      '/bin/sh',
      [
        '-c',
        `printf '%s\\n' ${q(SECRET)} | ${q(process.execPath)} ${q(MAIN)} vault --vault ${q(vaultPath)} --passphrase-fd 0 verify`,
      ],
      { env },
    );
    if (!fs.existsSync(vaultPath)) return; // the terminal test did not run
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /deriving key/);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(r.stdout + r.stderr, /[\x1b\r]/);
  });

  it('SSH_ASKPASS without a terminal; SSH_ASKPASS_REQUIRE force, prefer and never', async (t) => {
    if (!TMUX && !process.env.CI) return t.skip('tmux not installed');
    if (!fs.existsSync(vaultPath)) return t.skip('needs the vault of the terminal test');
    const askpass = path.join(dir, 'askpass');
    const asked = path.join(dir, 'asked');
    fs.writeFileSync(
      askpass,
      `#!/bin/sh\nprintf '%s\\n' "$1" >> ${q(asked)}\necho ${q(SECRET)}\n`,
      {
        mode: 0o755,
      },
    );
    const verify = (extra: NodeJS.ProcessEnv) =>
      run(process.execPath, [MAIN, 'vault', '--vault', vaultPath, 'verify'], {
        env: { ...env, SSH_ASKPASS: askpass, ...extra },
      });
    // No terminal, a display: askpass, with the prompt as its argument.
    let r = await verify({ DISPLAY: ':0' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(asked, 'utf8'), 'Enter passphrase for the vault: \n');
    // No display: only with SSH_ASKPASS_REQUIRE=force.
    r = await verify({});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /standard input is not a terminal/);
    r = await verify({ SSH_ASKPASS_REQUIRE: 'force' });
    assert.equal(r.code, 0, r.stderr);
    r = await verify({ DISPLAY: ':0', SSH_ASKPASS_REQUIRE: 'never' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /standard input is not a terminal/);

    // On a terminal: "prefer" (with a display) and "force" use askpass, no prompt on the terminal.
    if (!TMUX) return;
    fs.writeFileSync(asked, '');
    const base = `${q(process.execPath)} ${q(MAIN)} vault --vault ${q(vaultPath)} verify`;
    for (const [name, vars] of [
      ['prefer', `DISPLAY=:0 SSH_ASKPASS_REQUIRE=prefer`],
      ['force', `SSH_ASKPASS_REQUIRE=force`],
    ]) {
      const w = start(name, `env -u DISPLAY SSH_ASKPASS=${q(askpass)} ${vars} ${base}`);
      const screen = await waitScreen(w.screen, /EXIT=\d+/, `${name} to finish`);
      assert.match(screen, /EXIT=0/, screen);
      assert.doesNotMatch(screen, /Enter passphrase/, `${name}: no prompt on the terminal`);
    }
    assert.equal(fs.readFileSync(asked, 'utf8').split('\n').filter(Boolean).length, 2);
  });
});
