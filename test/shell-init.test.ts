// `tsagent init bash|zsh|fish`: the snippet, sourced by two separate shell
// processes, starts one agent and re-uses it (same SSH_AUTH_SOCK and
// SSH_AGENT_PID, a key added in the first shell is listed in the second);
// it prints nothing on stdout, does nothing without tsagent, and keeps a
// forwarded agent in an SSH login.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { alive, run, SSH_ADD } from './fixtures/run';
import { tsagentOnPath } from './fixtures/tsagent-on-path';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

const SHELLS: Record<string, string[]> = {
  bash: ['/usr/bin/bash', '/bin/bash'],
  zsh: ['/usr/bin/zsh', '/bin/zsh'],
  fish: ['/usr/bin/fish', '/bin/fish'],
};

function shellPath(name: string): string | undefined {
  return SHELLS[name].find((p) => fs.existsSync(p));
}

/** The command line that sources the rc file and then runs `body`, in that shell. */
function shellArgs(shell: string, rc: string, body: string): string[] {
  if (shell === 'fish') return ['--no-config', '-c', `source ${rc}; ${body}`];
  // -e -u: the snippet must survive the strictest rc files.
  return ['-euc', `. ${rc}; ${body}`];
}

describe('tsagent init: the rc-file snippet starts one agent and re-uses it', () => {
  const onPath = tsagentOnPath('tsagent-shell-', 'shell-init');
  const { agents, world } = onPath;

  async function snippetFor(shell: string, env: NodeJS.ProcessEnv, file: string) {
    const r = await run(process.execPath, [MAIN, 'init', shell], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    fs.writeFileSync(file, r.stdout);
    return r.stdout;
  }

  for (const name of Object.keys(SHELLS)) {
    it(`${name}: two shells, one agent`, async (t) => {
      const sh = shellPath(name);
      if (!sh) {
        if (process.env.CI) throw new Error(`${name} is required on CI (apt-get install ${name})`);
        return t.skip(`${name} not installed`);
      }
      const { env, runtime } = world(name);
      const rc = path.join(onPath.dir, `rc.${name}`);
      const text = await snippetFor(name, env, rc);
      assert.match(text, /tsagent -s/);

      // Sourcing alone prints nothing on stdout (scp and rsync over ssh depend on it).
      const quiet = await run(sh, shellArgs(name, rc, 'true'), { env });
      assert.equal(quiet.code, 0, quiet.stderr);
      assert.equal(quiet.stdout, '');

      const show = `echo "$SSH_AUTH_SOCK"; echo "$SSH_AGENT_PID"`;
      const haveKey = fs.existsSync(onPath.key) && fs.existsSync(SSH_ADD);
      if (!haveKey && process.env.CI) throw new Error('ssh-keygen and ssh-add are required on CI');
      const addKey = haveKey ? `; ${SSH_ADD} -q ${onPath.key}` : '';
      const first = await run(sh, shellArgs(name, rc, show + addKey), { env });
      assert.equal(first.code, 0, first.stderr);
      const [sock1, pid1] = first.stdout.trim().split('\n');
      agents.add(Number(pid1));
      assert.equal(sock1, path.join(runtime, 'tsagent', 'agent.sock'));
      assert.ok(alive(Number(pid1)), `agent ${pid1} runs after the first shell exited`);

      const list = haveKey ? `; ${SSH_ADD} -l` : '';
      const second = await run(sh, shellArgs(name, rc, show + list), { env });
      assert.equal(second.code, 0, second.stderr);
      const [sock2, pid2, listing] = second.stdout.trim().split('\n');
      assert.equal(sock2, sock1, 'same SSH_AUTH_SOCK');
      assert.equal(pid2, pid1, 'same SSH_AGENT_PID');
      if (haveKey) assert.match(listing, /ED25519|shell-init/, 'the key added in the first shell');
    });
  }

  it('does nothing (and does not fail) where tsagent is not installed', async (t) => {
    for (const name of Object.keys(SHELLS)) {
      const sh = shellPath(name);
      if (!sh) continue;
      const { env } = world(`missing-${name}`);
      const rc = path.join(onPath.dir, `rc-missing.${name}`);
      await snippetFor(name, env, rc);
      const body = name === 'fish' ? 'echo "[$SSH_AUTH_SOCK]"' : 'echo "[${SSH_AUTH_SOCK:-}]"';
      const r = await run(sh, shellArgs(name, rc, body), {
        env: { ...env, PATH: '/usr/bin:/bin' },
      });
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout, '[]\n', name);
      assert.equal(r.stderr, '', name);
    }
    if (!shellPath('bash')) t.skip('bash not installed');
  });

  it('keeps a forwarded agent in an SSH login', async () => {
    const fwd = path.join(onPath.dir, 'forwarded.sock');
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(fwd, r));
    try {
      for (const name of Object.keys(SHELLS)) {
        const sh = shellPath(name);
        if (!sh) continue;
        const { env, runtime } = world(`fwd-${name}`, {
          SSH_CONNECTION: '192.0.2.1 50000 192.0.2.2 22',
          SSH_AUTH_SOCK: fwd,
        });
        const rc = path.join(onPath.dir, `rc-fwd.${name}`);
        await snippetFor(name, env, rc);
        const r = await run(sh, shellArgs(name, rc, 'echo "$SSH_AUTH_SOCK"'), { env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), fwd, name);
        assert.ok(!fs.existsSync(path.join(runtime, 'tsagent', 'agent.sock')), 'no agent started');
      }
    } finally {
      server.close();
    }
  });

  it('without tsagent on PATH, the snippet runs this installation by its absolute path', async (t) => {
    const sh = shellPath('bash');
    if (!sh) return t.skip('bash not installed');
    const { env } = world('abs');
    env.PATH = '/usr/bin:/bin';
    const rc = path.join(onPath.dir, 'rc-abs.bash');
    const text = await snippetFor('bash', env, rc);
    assert.ok(text.includes(MAIN), text);
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const r = await run(sh, shellArgs('bash', rc, 'echo "$SSH_AGENT_PID"'), { env });
      assert.equal(r.code, 0, r.stderr);
      runs.push(r.stdout.trim());
      agents.add(Number(r.stdout.trim()));
    }
    assert.match(runs[0], /^\d+$/);
    assert.equal(runs[1], runs[0]);
  });

  it('passes agent options on, quoted', async () => {
    const env = { PATH: `${onPath.bin}:/usr/bin:/bin`, HOME: onPath.dir, LANG: 'C' };
    let r = await run(
      process.execPath,
      [MAIN, 'init', 'bash', '--lock-after', '30m', '--vault', "/v/it's here"],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.stdout.includes(`tsagent -s --lock-after 30m --vault '/v/it'\\''s here')`),
      r.stdout,
    );
    r = await run(process.execPath, [MAIN, 'init', 'fish', '--vault', "/v/it's here"], { env });
    assert.ok(r.stdout.includes(`(tsagent -s --vault '/v/it\\'s here')`), r.stdout);
  });
});
