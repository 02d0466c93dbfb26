// Process protection (prctl PR_SET_DUMPABLE 0, as OpenSSH's agent): with the
// agent running as a test user, that same user can neither read its memory
// (/proc/PID/mem, /proc/PID/environ) nor attach a debugger, and a crash leaves
// no core file even with `ulimit -c unlimited`. Each check has a control: the
// same thing against an ordinary process of that user succeeds, so a refusal
// means the agent's protection and not a restrictive machine.

import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OWNER, Tsagent, User, startTsagent, testUser, usersSkip } from './fuzz/agent';
import { TSAGENT_MAIN } from './fixtures/agent';
import { baseEnv, mkTemp, rmTemp, run, waitFor } from './fixtures/run';

const GDB = '/usr/bin/gdb';
const skip = usersSkip();
const gdbSkip = !fs.existsSync(GDB) && !process.env.CI ? `${GDB} not installed` : false;

/** Run `node -e js args…` as user; resolves with its stdout. */
function nodeAs(user: User, js: string, args: string[]): string {
  return execFileSync(process.execPath, ['-e', js, ...args], {
    uid: user.uid,
    gid: user.gid,
    env: baseEnv({ HOME: '/' }),
    cwd: '/',
    encoding: 'utf8',
    timeout: 15_000,
  }).trim();
}

/** Try to read /proc/PID/FILE as user: "ok <n bytes>" or the error code. */
const READ_PROC = `
  const fs = require('fs');
  const [pid, file] = process.argv.slice(1);
  try {
    const fd = fs.openSync('/proc/' + pid + '/' + file, 'r');
    let n = 0;
    if (file === 'mem') {
      // Read where the stack is: an address that is surely mapped.
      const maps = fs.readFileSync('/proc/' + pid + '/maps', 'utf8');
      const start = parseInt(maps.split('\\n').find((l) => l.includes('[stack]')).split('-')[0], 16);
      n = fs.readSync(fd, Buffer.alloc(16), 0, 16, start);
    } else n = fs.readSync(fd, Buffer.alloc(64), 0, 64, null);
    console.log('ok ' + n);
  } catch (e) { console.log(e.code || e.message); }`;

describe('process protection against the same uid', { skip }, () => {
  let owner: User;
  let agent: Tsagent;
  let control: ChildProcess;

  before(async () => {
    const u = testUser(OWNER);
    assert.ok(u, `cannot create the test user ${OWNER}`);
    owner = u;
    agent = await startTsagent({ user: owner });
    // An ordinary (dumpable) process of the same user, for the controls.
    control = spawn('/bin/sleep', ['120'], { uid: owner.uid, gid: owner.gid, stdio: 'ignore' });
    await waitFor('the control process', () => fs.existsSync(`/proc/${control.pid}/status`));
  });
  after(async () => {
    if (control?.pid) control.kill('SIGKILL');
    await agent?.stop();
  });

  it('/proc/PID files of the agent belong to root (the kernel does this for non-dumpable processes)', () => {
    assert.equal(fs.statSync(`/proc/${control.pid}/environ`).uid, owner.uid, 'control');
    assert.equal(fs.statSync(`/proc/${agent.pid}/environ`).uid, 0);
    assert.equal(fs.statSync(`/proc/${agent.pid}/mem`).uid, 0);
  });

  it('/proc/PID/mem and /proc/PID/environ cannot be read by the owner uid', () => {
    assert.match(nodeAs(owner, READ_PROC, [String(control.pid), 'environ']), /^ok /, 'control');
    assert.match(nodeAs(owner, READ_PROC, [String(control.pid), 'mem']), /^ok /, 'control');
    for (const file of ['mem', 'environ']) {
      const r = nodeAs(owner, READ_PROC, [String(agent.pid), file]);
      assert.match(
        r,
        /^(EACCES|EPERM)$/,
        `reading /proc/${agent.pid}/${file} as ${owner.name}: ${r}`,
      );
    }
  });

  it('gdb -p as the owner uid cannot attach', { skip: gdbSkip }, async () => {
    const gdb = (pid: number) =>
      run(
        '/usr/bin/setpriv',
        [
          `--reuid=${owner.uid}`,
          `--regid=${owner.gid}`,
          '--clear-groups',
          GDB,
          '-nx',
          '-batch',
          '-p',
          String(pid),
          '-ex',
          'info registers rip',
        ],
        { env: baseEnv({ HOME: '/' }), timeout: 60_000 },
      );
    const ok = await gdb(control.pid!);
    assert.match(
      ok.stdout,
      /\brip\b/,
      `control: gdb could not attach to an ordinary process:\n${ok.stdout}${ok.stderr}`,
    );
    const r = await gdb(agent.pid);
    const out = r.stdout + r.stderr;
    assert.match(out, /ptrace: Operation not permitted|Could not attach|not permitted/i, out);
    assert.doesNotMatch(r.stdout, /^rip\s/m, 'gdb read the agent registers');
    // The agent is alive and was not stopped by the attempt.
    assert.equal(agent.process.exitCode, null);
    const state = fs.readFileSync(`/proc/${agent.pid}/stat`, 'utf8').split(') ')[1][0];
    assert.notEqual(state, 't');
  });

  it('no core dump on a crash, even with ulimit -c unlimited', async (t) => {
    const pattern = fs.readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
    if (pattern.startsWith('|') || path.isAbsolute(pattern)) {
      t.skip(`core_pattern is ${pattern}: cores do not land in the working directory`);
      return;
    }
    const dir = mkTemp('tsagent-core-');
    fs.chownSync(dir, owner.uid, owner.gid);
    const cores = () => fs.readdirSync(dir).filter((f) => f.startsWith('core'));
    // Start something with RLIMIT_CORE unlimited in dir, abort it, look for a core.
    const crash = async (argv: string[]) => {
      const child = spawn('/bin/sh', ['-c', 'ulimit -c unlimited && exec "$@"', 'sh', ...argv], {
        uid: owner.uid,
        gid: owner.gid,
        cwd: dir,
        env: baseEnv({ HOME: dir, XDG_DATA_HOME: path.join(dir, 'none') }),
        stdio: 'ignore',
      });
      const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
      await waitFor(
        'the process to start',
        () =>
          fs.existsSync(path.join(dir, 'started')) || fs.existsSync(path.join(dir, 'agent.sock')),
        15_000,
      );
      process.kill(child.pid!, 'SIGABRT');
      return exited;
    };
    try {
      // Control: an ordinary node process leaves a core.
      await crash([
        process.execPath,
        '-e',
        'require("fs").writeFileSync("started", ""); setInterval(() => {}, 1000)',
      ]);
      const controlCores = cores();
      if (controlCores.length === 0) {
        t.skip('this machine does not write core files even for an ordinary process');
        return;
      }
      for (const f of [...controlCores, 'started']) fs.rmSync(path.join(dir, f));
      const sig = await crash([
        process.execPath,
        TSAGENT_MAIN,
        '-D',
        '-a',
        path.join(dir, 'agent.sock'),
      ]);
      assert.equal(sig, 'SIGABRT');
      assert.deepEqual(cores(), [], 'the agent left a core file');
    } finally {
      rmTemp(dir);
    }
  });
});
