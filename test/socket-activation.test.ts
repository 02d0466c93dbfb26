// Socket activation (sd_listen_fds): started by `systemd-socket-activate -l
// SOCK` on a temporary socket, as systemd starts it from contrib/tsagent.socket,
// the agent serves the socket it was given on fd 3 (ssh-add drives it), writes
// its pid file beside the default socket, leaves the socket in place when it
// exits, and passes none of LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES nor the
// listening fd to its children. Both ways the units start it: in the
// foreground (-D) and as the forking service does (`tsagent -s`, which hands
// the socket to the background agent).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { takeListenFd } from '../src/daemon/activation';
import {
  alive,
  missingTools,
  mkTemp,
  rmTemp,
  run,
  spawnWatched,
  SSH_ADD,
  SSH_KEYGEN,
  stopAll,
  waitFor,
} from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const ACTIVATE = '/usr/bin/systemd-socket-activate';

describe('takeListenFd: the sd_listen_fds protocol', () => {
  it('takes fd 3 when LISTEN_PID is ours, and unsets the variables whoever they were for', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '4242', LISTEN_FDS: '1', LISTEN_FDNAMES: 'x' };
    assert.equal(takeListenFd(env, 4242), 3);
    assert.deepEqual(env, {});
    const other: NodeJS.ProcessEnv = { LISTEN_PID: '4243', LISTEN_FDS: '1', KEEP: 'y' };
    assert.equal(takeListenFd(other, 4242), undefined, 'meant for another process');
    assert.deepEqual(other, { KEEP: 'y' });
    assert.equal(takeListenFd({}, 4242), undefined);
    assert.equal(takeListenFd({ LISTEN_PID: '4242', LISTEN_FDS: '0' }, 4242), undefined);
    assert.equal(takeListenFd({ LISTEN_PID: '4242x', LISTEN_FDS: '1' }, 4242), undefined);
  });

  it('refuses more than one socket and a LISTEN_FDS that is not a number', () => {
    assert.throws(() => takeListenFd({ LISTEN_PID: '7', LISTEN_FDS: '2' }, 7), /2 sockets/);
    assert.throws(
      () => takeListenFd({ LISTEN_PID: '7', LISTEN_FDS: '1\x1b[2J' }, 7),
      (e: Error) => /not a number/.test(e.message) && !e.message.includes('\x1b'),
    );
  });
});

describe('socket activation: the agent serves the socket systemd gives it', () => {
  let dir: string;
  let key: string;
  let askpass: string;
  const pids = new Set<number>();
  const missing = missingTools([ACTIVATE, SSH_ADD, SSH_KEYGEN]);

  before(async () => {
    dir = mkTemp('tsagent-activate-');
    key = path.join(dir, 'id_ed25519');
    if (missing.length === 0) {
      const r = await run(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'act', '-f', key]);
      assert.equal(r.code, 0, r.stderr);
    }
    // Confirms, and records what the agent's child sees: its environment and open fds.
    askpass = path.join(dir, 'askpass');
    fs.writeFileSync(
      askpass,
      `#!/bin/sh\nenv > "$ASKPASS_OUT.env"\nfor f in /proc/$$/fd/*; do readlink "$f"; done > "$ASKPASS_OUT.fds"\nexit 0\n`,
      { mode: 0o755 },
    );
  });

  after(async () => {
    await stopAll(pids);
    rmTemp(dir);
  });

  function need(t: { skip: (m: string) => void }): boolean {
    if (missing.length === 0) return true;
    if (process.env.CI)
      throw new Error(
        `required on CI: ${missing.join(', ')} (apt-get install systemd openssh-client)`,
      );
    t.skip(`not installed: ${missing.join(', ')}`);
    return false;
  }

  /** A private runtime directory (as the .socket unit's DirectoryMode=0700 makes it). */
  function world(name: string) {
    const runtime = path.join(dir, `run-${name}`);
    const sockDir = path.join(runtime, 'tsagent');
    fs.mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(runtime, 0o700);
    const sock = path.join(sockDir, 'agent.sock');
    const vars = {
      XDG_RUNTIME_DIR: runtime,
      XDG_DATA_HOME: path.join(dir, `data-${name}`),
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: 'force',
      ASKPASS_OUT: path.join(dir, `askpass-${name}`),
    };
    // systemd-socket-activate passes only PATH, HOME, TERM and USER on, and -E's.
    const setenv = Object.entries(vars).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
    const env = { PATH: '/usr/bin:/bin', HOME: dir, LANG: 'C', ...vars };
    return { sock, sockDir, setenv, env, askpassOut: vars.ASKPASS_OUT };
  }

  /** The inode of the listening socket, as /proc shows the fd ("socket:[N]"). */
  function socketInode(pid: number, fd: number): string {
    return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  }

  /** A confirm-constrained key, one signature: the agent runs askpass once. */
  async function signWithConfirm(env: NodeJS.ProcessEnv, sock: string) {
    const e = { ...env, SSH_AUTH_SOCK: sock };
    const add = await run(SSH_ADD, ['-q', '-c', key], { env: e });
    assert.equal(add.code, 0, add.stderr);
    const msg = path.join(dir, `msg-${path.basename(path.dirname(path.dirname(sock)))}`);
    fs.writeFileSync(msg, 'hello\n');
    const sig = await run(SSH_KEYGEN, ['-Y', 'sign', '-n', 'file', '-f', `${key}.pub`, msg], {
      env: e,
    });
    assert.equal(sig.code, 0, sig.stderr);
  }

  it('in the foreground (-D): first use starts it; ssh-add drives it; the socket stays', async (t) => {
    if (!need(t)) return;
    const w = world('fg');
    const act = spawnWatched(ACTIVATE, ['-l', w.sock, ...w.setenv, process.execPath, MAIN, '-D'], {
      env: w.env,
      timeout: 60_000,
    });
    pids.add(act.pid);
    await waitFor('systemd-socket-activate to listen', () => /Listening on/.test(act.stderr()));
    assert.ok(!fs.existsSync(path.join(w.sockDir, 'agent.pid')), 'not started before first use');
    // The first connection starts the agent (systemd-socket-activate execs it: same pid).
    const list = await run(SSH_ADD, ['-l'], { env: { ...w.env, SSH_AUTH_SOCK: w.sock } });
    assert.equal(list.code, 1, list.stderr);
    assert.match(list.stdout, /no identities/);
    assert.equal(fs.readFileSync(path.join(w.sockDir, 'agent.pid'), 'utf8'), `${act.pid}\n`);
    // It serves the inherited fd 3 and bound nothing itself.
    const listening = socketInode(act.pid, 3);
    assert.match(listening, /^socket:/);
    assert.match(act.stdout(), new RegExp(`SSH_AUTH_SOCK=${w.sock};`));

    await signWithConfirm(w.env, w.sock);
    const childEnv = fs.readFileSync(`${w.askpassOut}.env`, 'utf8');
    assert.match(childEnv, /^SSH_ASKPASS_PROMPT=confirm$/m, 'askpass ran');
    assert.doesNotMatch(childEnv, /^LISTEN_/m, 'no LISTEN_* for children');
    const childFds = fs.readFileSync(`${w.askpassOut}.fds`, 'utf8').split('\n');
    // Node marks the inherited fd close-on-exec (as sd_listen_fds does): kept so.
    assert.ok(!childFds.includes(listening), 'the listening socket is close-on-exec');

    const l2 = await run(SSH_ADD, ['-l'], { env: { ...w.env, SSH_AUTH_SOCK: w.sock } });
    assert.match(l2.stdout, /act \(ED25519\)/);
    process.kill(act.pid, 'SIGTERM');
    const r = await act.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.statSync(w.sock).isSocket(), 'the socket is left for systemd');
    assert.ok(!fs.existsSync(path.join(w.sockDir, 'agent.pid')), 'the pid file goes');
  });

  it('as tsagent.service starts it (tsagent -s): the background agent serves the socket', async (t) => {
    if (!need(t)) return;
    const w = world('svc');
    const act = spawnWatched(ACTIVATE, ['-l', w.sock, ...w.setenv, process.execPath, MAIN, '-s'], {
      env: w.env,
      timeout: 60_000,
    });
    await waitFor('systemd-socket-activate to listen', () => /Listening on/.test(act.stderr()));
    const list = await run(SSH_ADD, ['-l'], { env: { ...w.env, SSH_AUTH_SOCK: w.sock } });
    assert.equal(list.code, 1, list.stderr);
    // The starter (systemd's main process for Type=forking) prints and exits.
    const started = await act.done;
    assert.equal(started.code, 0, started.stderr);
    const pid = Number(/SSH_AGENT_PID=(\d+);/.exec(started.stdout)?.[1]);
    pids.add(pid);
    assert.notEqual(pid, act.pid);
    assert.ok(alive(pid));
    assert.match(started.stdout, new RegExp(`SSH_AUTH_SOCK=${w.sock};`));
    assert.equal(fs.readFileSync(path.join(w.sockDir, 'agent.pid'), 'utf8'), `${pid}\n`);
    assert.equal(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'tsagent');

    await signWithConfirm(w.env, w.sock);
    assert.doesNotMatch(fs.readFileSync(`${w.askpassOut}.env`, 'utf8'), /^LISTEN_/m);
    // `tsagent status` finds it through the default socket.
    const st = await run(process.execPath, [MAIN, 'status', '--json'], { env: w.env });
    assert.equal(st.code, 0, st.stderr);
    assert.equal(JSON.parse(st.stdout).pid, pid);

    process.kill(pid, 'SIGTERM');
    await waitFor('the agent to exit', () => !alive(pid));
    assert.ok(fs.statSync(w.sock).isSocket(), 'the socket is left for systemd');
    assert.ok(!fs.existsSync(path.join(w.sockDir, 'agent.pid')));
  });

  it('a LISTEN_PID for another process is ignored: the agent binds its own socket', async (t) => {
    if (!need(t)) return;
    const w = world('other');
    const own = path.join(dir, 'own.sock');
    const agent = spawnWatched(process.execPath, [MAIN, '-D', '-a', own], {
      env: { ...w.env, LISTEN_PID: '1', LISTEN_FDS: '1' },
    });
    pids.add(agent.pid);
    await agent.waitForStdout(/SSH_AUTH_SOCK=/);
    const list = await run(SSH_ADD, ['-l'], { env: { ...w.env, SSH_AUTH_SOCK: own } });
    assert.equal(list.code, 1, list.stderr);
    process.kill(agent.pid, 'SIGTERM');
    await agent.done;
    assert.ok(!fs.existsSync(own), 'its own socket, removed at exit as always');
  });

  it('refuses an fd 3 that is not a listening Unix socket', async (t) => {
    if (!need(t)) return;
    const w = world('bad');
    // exec keeps the shell's pid, which LISTEN_PID names; fd 3 is a plain file.
    const r = await run(
      '/bin/sh',
      ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$1" -D 3<"$1"`, process.execPath, MAIN],
      { env: w.env },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fd 3 is not a listening Unix stream socket/);
  });
});
