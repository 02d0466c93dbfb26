// Acceptance: the agent as a process (ssh-agent's command line): the printed
// shell lines, -k, command mode, -a on a live socket, signals; and, tsagent
// only, the re-use of a live default agent and the replacement of a stale one.
// Every agent started here is killed by pid in after() (background ones too).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  AGENTS,
  AgentSpec,
  TSAGENTS,
  TSAGENT_MAIN,
  agentAnswers,
  agentCommand,
  startAgent,
} from './fixtures/agent';
import { RunResult, SSH_ADD, alive, baseEnv, mkTemp, rmTemp, run, waitFor } from './fixtures/run';

/** Pids of every agent a test started; killed after each test. */
const started = new Set<number>();
function track(pid: number): number {
  started.add(pid);
  return pid;
}
/** Is `pid` still one of our agents? (pid_max may be small: never kill a recycled pid) */
function isAgent(pid: number): boolean {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    // A background tsagent has set its title: its command line reads "tsagent".
    return (
      alive(pid) &&
      (cmd.includes('ssh-agent') || cmd.includes(TSAGENT_MAIN) || cmd.startsWith('tsagent'))
    );
  } catch {
    return false;
  }
}
async function killAll(): Promise<void> {
  const pids = [...started];
  started.clear();
  for (const pid of pids) {
    try {
      if (isAgent(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  for (const pid of pids) await waitFor(`pid ${pid} to exit`, () => !alive(pid), 5000);
}
afterEach(killAll);

/** Run the agent's command line (not the -D fixture) with an explicit environment. */
function agentRun(
  spec: AgentSpec,
  args: string[],
  env: Record<string, string | undefined> = {},
  timeout = 30_000,
): Promise<RunResult> {
  const [cmd, argv] = agentCommand(spec, args);
  return run(cmd, argv, { env: baseEnv(env), timeout });
}

/** Parse ssh-agent's sh or csh lines: the socket and pid (and track the pid). */
function parseLines(r: RunResult): { sock: string; pid: number } {
  const out = r.stdout;
  const sock = /SSH_AUTH_SOCK[= ]([^;]+);/.exec(out)?.[1];
  const pid = Number(/echo Agent pid (\d+);/.exec(out)?.[1]);
  assert.ok(sock && pid > 1, `unexpected output (exit ${r.code}): ${out}${r.stderr}`);
  track(pid);
  return { sock, pid };
}

const shLines = (sock: string, pid: number) =>
  `SSH_AUTH_SOCK=${sock}; export SSH_AUTH_SOCK;\nSSH_AGENT_PID=${pid}; export SSH_AGENT_PID;\necho Agent pid ${pid};\n`;
const cshLines = (sock: string, pid: number) =>
  `setenv SSH_AUTH_SOCK ${sock};\nsetenv SSH_AGENT_PID ${pid};\necho Agent pid ${pid};\n`;

const gone = (p: string) => !fs.existsSync(p);

for (const agent of AGENTS) {
  describe(`${agent.name} as a process`, () => {
    let dir: string;
    before(() => {
      dir = mkTemp();
    });
    after(async () => {
      await killAll();
      rmTemp(dir);
    });

    for (const [i, [flags, env, syntax]] of (
      [
        [['-s'], { SHELL: '/bin/tcsh' }, 'sh'],
        [['-c'], { SHELL: '/bin/bash' }, 'csh'],
        [[], { SHELL: '/bin/tcsh' }, 'csh'],
        [[], { SHELL: '/bin/csh' }, 'csh'],
        [[], { SHELL: '/bin/bash' }, 'sh'],
        [[], { SHELL: undefined }, 'sh'],
      ] as [string[], Record<string, string | undefined>, 'sh' | 'csh'][]
    ).entries()) {
      it(`${[...flags, '-a SOCK'].join(' ')} with SHELL=${env.SHELL ?? '(unset)'}: ${syntax} lines, then -k kills it`, async () => {
        const sock = path.join(dir, `agent-${i}.sock`);
        const r = await agentRun(agent, [...flags, '-a', sock], env);
        assert.equal(r.code, 0, r.stderr);
        const { pid } = parseLines(r);
        assert.equal(r.stdout, syntax === 'sh' ? shLines(sock, pid) : cshLines(sock, pid));
        assert.ok(
          await agentAnswers(sock),
          `agent ${pid} not answering: alive ${alive(pid)}, socket exists ${fs.existsSync(sock)}`,
        );

        const k = await agentRun(agent, ['-k', ...flags], { ...env, SSH_AGENT_PID: String(pid) });
        assert.equal(k.code, 0, k.stderr);
        assert.equal(
          k.stdout,
          syntax === 'sh'
            ? `unset SSH_AUTH_SOCK;\nunset SSH_AGENT_PID;\necho Agent pid ${pid} killed;\n`
            : `unsetenv SSH_AUTH_SOCK;\nunsetenv SSH_AGENT_PID;\necho Agent pid ${pid} killed;\n`,
        );
        await waitFor('the killed agent to exit', () => !alive(pid));
        await waitFor('its socket to be removed', () => gone(sock));
      });
    }

    it('-k without SSH_AGENT_PID, or with a bad one: exit 1, nothing on stdout', async () => {
      const r = await agentRun(agent, ['-k']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /SSH_AGENT_PID not set, cannot kill agent\n$/);
      const bad = await agentRun(agent, ['-k'], { SSH_AGENT_PID: 'abc' });
      assert.equal(bad.code, 1);
      assert.equal(bad.stdout, '');
      assert.match(bad.stderr, /SSH_AGENT_PID="abc", which is not a good PID: invalid\n$/);
    });

    it('command mode: the variables are set, the exit code is returned, the agent and its socket go away', async () => {
      const r = await agentRun(
        agent,
        ['sh', '-c', 'ssh-add -l; echo "$SSH_AUTH_SOCK"; echo "$SSH_AGENT_PID"; exit 3'],
        // The command must see the new agent, not whatever was set before.
        { SSH_AUTH_SOCK: path.join(dir, 'not-this-one.sock'), SSH_AGENT_PID: '1', TMPDIR: dir },
      );
      assert.equal(r.code, 3, r.stderr);
      const [listing, sock, pidText, ...rest] = r.stdout.split('\n');
      assert.equal(listing, 'The agent has no identities.');
      assert.deepEqual(rest, ['']);
      const pid = track(Number(pidText));
      assert.ok(pid > 1);
      assert.ok(path.isAbsolute(sock) && sock !== path.join(dir, 'not-this-one.sock'), sock);
      // OpenSSH's agent (a child of the command) notices within 10 s that its
      // parent is gone; tsagent (the command's parent) cleans up before exiting.
      await waitFor('the agent to exit', () => !alive(pid), 20_000);
      await waitFor('the socket to be removed', () => gone(sock), 20_000);
      assert.ok(gone(path.dirname(sock)), `${path.dirname(sock)} removed`);
    });

    it('command mode with -a: the command talks to the agent on that socket', async () => {
      const sock = path.join(dir, 'command.sock');
      const r = await agentRun(agent, ['-a', sock, SSH_ADD, '-l']);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, 'The agent has no identities.\n');
      await waitFor('the socket to be removed', () => gone(sock), 20_000);
    });

    it('-a PATH where an agent is live: exit 1, "Address already in use", the live one unharmed', async () => {
      const live = await startAgent(agent);
      try {
        for (const fg of [[], ['-D']]) {
          const r = await agentRun(agent, [...fg, '-a', live.sock]);
          assert.equal(r.code, 1, `${fg.join(' ')}: ${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /Address already in use/);
          assert.equal(r.stdout, '');
          assert.ok(await agentAnswers(live.sock));
          assert.ok(alive(live.pid));
        }
      } finally {
        await live.stop();
      }
    });

    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      it(`-D (no -a) and ${sig}: exits, socket and its directory removed`, async () => {
        const [cmd, argv] = agentCommand(agent, ['-D']);
        const { spawn } = await import('node:child_process');
        const child = spawn(cmd, argv, {
          env: baseEnv({ TMPDIR: dir }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        track(child.pid!);
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise((r) => child.on('exit', r));
        const sock = await waitFor(
          'the agent lines',
          () => /SSH_AUTH_SOCK=([^;]+);/.exec(out)?.[1] ?? '',
        );
        assert.match(out, new RegExp(`echo Agent pid ${child.pid};`));
        await waitFor('the agent to answer', () => agentAnswers(sock));
        process.kill(child.pid!, sig);
        await exited;
        assert.ok(gone(sock), 'socket removed');
        assert.ok(gone(path.dirname(sock)), 'directory removed');
      });
    }
  });
}

// tsagent only: ssh-agent has no default socket, hence nothing to re-use.
for (const agent of TSAGENTS) {
  describe(`${agent.name}: one default agent per user (re-use, stale socket)`, () => {
    let xdg: string;
    let defaultDir: string;
    let sock: string;
    const env = () => ({ XDG_RUNTIME_DIR: xdg, SHELL: '/bin/bash' });
    const start = (args: string[] = []) => agentRun(agent, args, env());
    /** Background agents serving from our XDG dir (named tsagent, started with it in their environment). */
    const daemons = () =>
      fs.readdirSync('/proc').filter((p) => {
        if (!/^\d+$/.test(p) || !alive(Number(p))) return false;
        try {
          return (
            fs.readFileSync(`/proc/${p}/comm`, 'utf8') === 'tsagent\n' &&
            fs
              .readFileSync(`/proc/${p}/environ`, 'utf8')
              .split('\0')
              .includes(`XDG_RUNTIME_DIR=${xdg}`)
          );
        } catch {
          return false;
        }
      });

    before(() => {
      xdg = mkTemp();
      fs.chmodSync(xdg, 0o700);
      defaultDir = path.join(xdg, 'tsagent');
      sock = path.join(defaultDir, 'agent.sock');
    });
    afterEach(killAll);
    after(() => rmTemp(xdg));

    it('starting twice gives the same socket and pid, and one agent', async () => {
      const first = await start();
      assert.equal(first.code, 0, first.stderr);
      const { pid } = parseLines(first);
      assert.equal(first.stdout, shLines(sock, pid));
      assert.equal(fs.statSync(defaultDir).mode & 0o777, 0o700);
      assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
      const second = await start();
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout, first.stdout);
      // Re-use in the csh syntax too.
      const csh = await start(['-c']);
      assert.equal(csh.stdout, cshLines(sock, pid));
      assert.deepEqual(daemons(), [String(pid)]);
      // The default agent is an ordinary agent.
      const l = await run(SSH_ADD, ['-l'], { env: baseEnv({ SSH_AUTH_SOCK: sock }) });
      assert.equal(l.stdout, 'The agent has no identities.\n');
      // And SIGTERM removes its socket and directory.
      process.kill(pid, 'SIGTERM');
      await waitFor('the agent to exit', () => !alive(pid));
      assert.ok(gone(sock) && gone(defaultDir));
    });

    it('the background agent shows as tsagent in ps, with no configuration on its command line', async () => {
      const { pid } = parseLines(await start());
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      assert.equal(cmdline.replace(/[\0 ]+$/, ''), 'tsagent', JSON.stringify(cmdline));
      assert.doesNotMatch(cmdline, /[{}]|paths|internal-daemon|main\.js/);
      const ps = await run('/usr/bin/ps', ['-o', 'comm=,args=', '-p', String(pid)]);
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /^tsagent\s+tsagent\s*$/);
      // Nor is it kept in the environment, where /proc/PID/environ would show it for ever.
      assert.doesNotMatch(fs.readFileSync(`/proc/${pid}/environ`, 'utf8'), /"paths"/);
      // And it serves.
      const l = await run(SSH_ADD, ['-l'], { env: baseEnv({ SSH_AUTH_SOCK: sock }) });
      assert.equal(l.stdout, 'The agent has no identities.\n');
    });

    it('three concurrent starts: still one agent', async () => {
      const rs = await Promise.all([start(), start(), start()]);
      for (const r of rs) assert.equal(r.code, 0, r.stderr);
      const pids = rs.map((r) => parseLines(r).pid);
      assert.equal(new Set(pids).size, 1, `pids ${pids.join(' ')}`);
      assert.deepEqual(rs[1].stdout, rs[0].stdout);
      assert.deepEqual(rs[2].stdout, rs[0].stdout);
      assert.deepEqual(daemons(), [String(pids[0])]);
    });

    it('a stale socket (agent killed with SIGKILL) is replaced by a new agent', async () => {
      const first = parseLines(await start());
      process.kill(first.pid, 'SIGKILL');
      await waitFor('the agent to die', () => !alive(first.pid));
      assert.ok(fs.existsSync(sock), 'SIGKILL leaves the socket behind');
      assert.equal(await agentAnswers(sock), false);
      const r = await start();
      assert.equal(r.code, 0, r.stderr);
      const second = parseLines(r);
      assert.notEqual(second.pid, first.pid);
      assert.equal(second.sock, sock);
      assert.ok(await agentAnswers(sock));
      assert.deepEqual(daemons(), [String(second.pid)]);
    });

    it('--new starts another agent even though the default one is live', async () => {
      const def = parseLines(await start());
      const r = await agentRun(agent, ['--new'], { ...env(), TMPDIR: xdg });
      assert.equal(r.code, 0, r.stderr);
      const other = parseLines(r);
      assert.notEqual(other.pid, def.pid);
      assert.notEqual(other.sock, sock);
      assert.ok(await agentAnswers(other.sock));
      assert.ok(await agentAnswers(sock));
    });
  });
}
