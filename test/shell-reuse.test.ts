// The `tsagent init` snippet re-uses a running agent without starting node: a
// new interactive bash, zsh or fish, traced with `strace -f -e trace=execve`,
// runs no `node` (and no `tsagent`) when the agent runs, and its SSH_AUTH_SOCK
// and SSH_AGENT_PID name that agent. When the recorded pid is dead or is not a
// tsagent, the snippet runs tsagent, which replaces the stale socket as before.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { alive, missingTools, run, sleep, SSH_ADD, SSH_KEYGEN } from './fixtures/run';
import { tsagentOnPath } from './fixtures/tsagent-on-path';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const STRACE =
  ['/usr/bin/strace', '/bin/strace'].find((p) => fs.existsSync(p)) ?? '/usr/bin/strace';
const SHELLS: Record<string, string> = {
  bash: '/bin/bash',
  zsh: '/bin/zsh',
  fish: '/usr/bin/fish',
};

/** Where each shell reads its interactive start-up file, under HOME. */
const RC: Record<string, string> = {
  bash: '.bashrc',
  zsh: '.zshrc',
  fish: path.join('.config', 'fish', 'config.fish'),
};

/** The programs a traced run executed (successful execve calls), as [path, argv…]. */
function executed(trace: string): string[][] {
  const out: string[][] = [];
  for (const line of trace.split('\n')) {
    const m = /execve\("((?:[^"\\]|\\.)*)", \[(.*)\], .*\) = 0$/.exec(line);
    if (!m) continue;
    const argv = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => a[1]);
    out.push([m[1], ...argv]);
  }
  return out;
}

const startsNode = (progs: string[][]) =>
  progs.filter(
    (p) =>
      ['node', 'tsagent'].includes(path.basename(p[0])) || p.some((a) => a.includes('main.js')),
  );

describe('tsagent init: a new shell re-uses the running agent without starting node', () => {
  const onPath = tsagentOnPath('tsagent-reuse-', 'reuse');
  const pids = onPath.agents;
  const missing = missingTools([STRACE, SSH_ADD, SSH_KEYGEN, ...Object.values(SHELLS)]);

  function need(t: { skip: (m: string) => void }): boolean {
    if (missing.length === 0) return true;
    if (process.env.CI) throw new Error(`required on CI: ${missing.join(', ')}`);
    t.skip(`not installed: ${missing.join(', ')}`);
    return false;
  }

  /**
   * A HOME with the snippet in the shell's rc file, and a private XDG_RUNTIME_DIR;
   * or none (`tmp`): then the agent's directory is a tsagent-XXXXXX in a private
   * TMPDIR, named by the pointer file in HOME's state directory (daemon/paths.ts).
   */
  async function world(name: string, shell: string, opts: { tmp?: boolean } = {}) {
    const w = onPath.world(name, { TERM: 'dumb' });
    const env: NodeJS.ProcessEnv = { ...w.env, XDG_CONFIG_HOME: path.join(w.home, '.config') };
    if (opts.tmp) {
      delete env.XDG_RUNTIME_DIR;
      env.TMPDIR = w.runtime;
    }
    const r = await run(process.execPath, [MAIN, 'init', shell], { env });
    assert.equal(r.code, 0, r.stderr);
    const rc = path.join(w.home, RC[shell]);
    fs.mkdirSync(path.dirname(rc), { recursive: true });
    fs.writeFileSync(rc, r.stdout);
    const pointer = path.join(w.home, '.local', 'state', 'tsagent', `runtime-dir.${os.hostname()}`);
    const sockDir = () =>
      opts.tmp ? fs.readFileSync(pointer, 'utf8').trim() : path.join(w.runtime, 'tsagent');
    return { env, sockDir };
  }

  const SHOW = 'echo "$SSH_AUTH_SOCK"; echo "$SSH_AGENT_PID"';

  /** `SHELL -i -c …`: what it printed. */
  async function shell(name: string, env: NodeJS.ProcessEnv) {
    const r = await run(SHELLS[name], ['-i', '-c', SHOW], { env, timeout: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const [sock, pid] = r.stdout.trim().split('\n');
    return { sock, pid: Number(pid) };
  }

  /**
   * `cmd…` under `strace -f -e trace=execve`: what it printed and what it
   * executed. (Only where no agent starts: strace -f would follow the agent.)
   */
  async function traced(cmd: string[], env: NodeJS.ProcessEnv, tag: string) {
    const out = path.join(onPath.dir, `trace-${tag}`);
    const r = await run(STRACE, ['-f', '-qq', '-e', 'trace=execve', '-o', out, ...cmd], {
      env,
      timeout: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const [sock, pid] = r.stdout.trim().split('\n');
    return { sock, pid: Number(pid), progs: executed(fs.readFileSync(out, 'utf8')) };
  }

  for (const [name, tmp] of Object.keys(SHELLS).flatMap(
    (n) =>
      [
        [n, false],
        [n, true],
      ] as const,
  )) {
    const where = tmp ? ' (no XDG_RUNTIME_DIR: the directory the pointer file names)' : '';
    it(`${name} -i: no node once the agent runs; the variables name it${where}`, async (t) => {
      if (!need(t)) return;
      const { env, sockDir } = await world(`live-${name}${tmp ? '-tmp' : ''}`, name, { tmp });
      const first = await shell(name, env);
      pids.add(first.pid);
      assert.equal(first.sock, path.join(sockDir(), 'agent.sock'));
      if (tmp) assert.match(path.basename(sockDir()), /^tsagent-.{6}$/);
      assert.ok(alive(first.pid), 'the agent runs');
      const add = await run(SSH_ADD, ['-q', onPath.key], {
        env: { ...env, SSH_AUTH_SOCK: first.sock },
      });
      assert.equal(add.code, 0, add.stderr);
      // What the snippet ran before: tsagent itself, which finds the agent (the trace sees node).
      const before = await traced(
        [SHELLS.bash, '-c', `eval "$(tsagent -s)" >/dev/null; ${SHOW}`],
        env,
        `tsagent-${name}`,
      );
      assert.equal(before.pid, first.pid);
      assert.ok(startsNode(before.progs).length > 0, JSON.stringify(before.progs));

      const second = await traced([SHELLS[name], '-i', '-c', SHOW], env, `second-${name}`);
      assert.deepEqual(startsNode(second.progs), [], 'no node, no tsagent');
      assert.equal(path.basename(second.progs[0][0]), name);
      assert.equal(second.sock, first.sock);
      assert.equal(second.pid, first.pid);
      // …and that is the agent holding the key added through the first shell.
      const list = await run(SSH_ADD, ['-l'], { env: { ...env, SSH_AUTH_SOCK: second.sock } });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /reuse \(ED25519\)/);
      assert.equal(fs.readFileSync(`/proc/${second.pid}/comm`, 'utf8').trim(), 'tsagent');
    });
  }

  it('a dead pid, or a live process that is not tsagent, in the pid file: a new agent', async (t) => {
    if (!need(t)) return;
    for (const name of Object.keys(SHELLS)) {
      const { env, sockDir } = await world(`stale-${name}`, name);
      const first = await shell(name, env);
      pids.add(first.pid);
      // Killed hard: its socket and pid file stay behind, the pid is dead.
      process.kill(first.pid, 'SIGKILL');
      for (let i = 0; i < 50 && alive(first.pid); i++) await sleep(50);
      assert.ok(fs.existsSync(path.join(sockDir(), 'agent.sock')));
      assert.equal(
        fs.readFileSync(path.join(sockDir(), 'agent.pid'), 'utf8').trim(),
        `${first.pid}`,
      );
      const second = await shell(name, env);
      pids.add(second.pid);
      assert.notEqual(second.pid, first.pid, `${name} took a dead pid for the agent`);
      assert.ok(alive(second.pid));

      // The pid recorded is reused by a process of ours that is not tsagent.
      process.kill(second.pid, 'SIGKILL');
      for (let i = 0; i < 50 && alive(second.pid); i++) await sleep(50);
      const impostor = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
      try {
        fs.writeFileSync(path.join(sockDir(), 'agent.pid'), `${impostor.pid}\n`);
        const third = await shell(name, env);
        pids.add(third.pid);
        assert.notEqual(third.pid, impostor.pid, `${name} took sleep for the agent`);
        assert.ok(alive(third.pid));
        assert.equal(fs.readFileSync(`/proc/${third.pid}/comm`, 'utf8').trim(), 'tsagent');
        const list = await run(SSH_ADD, ['-l'], { env: { ...env, SSH_AUTH_SOCK: third.sock } });
        assert.equal(list.code, 1, 'a new, empty agent answers');
      } finally {
        impostor.kill('SIGKILL');
      }
    }
  });
});
