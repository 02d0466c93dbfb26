// Without $XDG_RUNTIME_DIR the default agent's directory has an unpredictable
// name in the temp dir, found again through a file in the user's own state
// directory: a directory planted by another user (at the old fixed name
// tsagent-$UID, or at the name the pointer gives once that is gone) is never
// used, and never stops the agent from starting.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TSAGENTS, TSAGENT_MAIN } from './fixtures/agent';
import { SSH_ADD, alive, baseEnv, mkTemp, rmTemp, run, waitFor } from './fixtures/run';

const isRoot = process.getuid?.() === 0;
const PLANTER = `tsagent-planter-${process.pid}`;

for (const agent of TSAGENTS) {
  describe(`${agent.name}: the default agent directory without XDG_RUNTIME_DIR`, () => {
    let root: string;
    let tmp: string;
    let home: string;
    let planterUid = -1;
    const pids = new Set<number>();
    const env = () => baseEnv({ HOME: home, TMPDIR: tmp, SHELL: '/bin/sh' });
    const pointer = () =>
      path.join(home, '.local', 'state', 'tsagent', `runtime-dir.${os.hostname()}`);
    const start = async () => {
      const r = await run(process.execPath, [TSAGENT_MAIN, '-s'], { env: env() });
      assert.equal(r.code, 0, r.stderr);
      const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(r.stdout)?.[1] ?? '';
      const pid = Number(/SSH_AGENT_PID=(\d+);/.exec(r.stdout)?.[1]);
      pids.add(pid);
      return { sock, pid };
    };
    const stop = async (pid: number) => {
      process.kill(pid, 'SIGTERM');
      await waitFor(`agent ${pid} to exit`, () => !alive(pid));
    };
    /** A directory owned by the other user, as they could make in a shared /tmp. */
    const plant = (dir: string) => {
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chownSync(dir, planterUid, planterUid);
    };

    before(() => {
      if (!isRoot) return;
      root = mkTemp();
      tmp = path.join(root, 'tmp');
      home = path.join(root, 'home');
      fs.mkdirSync(tmp, { mode: 0o1777 });
      fs.chmodSync(tmp, 0o1777);
      fs.mkdirSync(home, { mode: 0o700 });
      execFileSync('useradd', [
        '--system',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        PLANTER,
      ]);
      planterUid = Number(execFileSync('id', ['-u', PLANTER], { encoding: 'utf8' }).trim());
    });
    after(async () => {
      if (!isRoot) return;
      for (const pid of pids) if (alive(pid)) await stop(pid);
      try {
        execFileSync('userdel', [PLANTER]);
      } finally {
        rmTemp(root);
      }
    });

    it('starts beside a planted tsagent-$UID, in a private directory named at random, and re-uses it', async (t) => {
      if (!isRoot) return t.skip('planting a directory owned by another user needs root');
      const fixed = path.join(tmp, `tsagent-${process.getuid!()}`);
      plant(fixed);
      const first = await start();
      const dir = path.dirname(first.sock);
      assert.notEqual(dir, fixed);
      assert.equal(path.dirname(dir), tmp);
      assert.match(path.basename(dir), /^tsagent-[A-Za-z0-9]{6}$/);
      const st = fs.statSync(dir);
      assert.equal(st.uid, process.getuid!());
      assert.equal(st.mode & 0o777, 0o700);
      assert.deepEqual(fs.readdirSync(fixed), [], 'nothing was put in the planted directory');
      // The pointer, only the user can write it, names the directory.
      assert.equal(fs.readFileSync(pointer(), 'utf8').trim(), dir);
      assert.equal(fs.statSync(pointer()).mode & 0o022, 0);
      // A second start re-uses that agent; the commands find it without SSH_AUTH_SOCK.
      const second = await start();
      assert.deepEqual(second, first);
      const status = await run(process.execPath, [TSAGENT_MAIN, 'status'], { env: env() });
      assert.equal(status.code, 1, status.stderr);
      assert.match(status.stdout, new RegExp(`socket: ${first.sock}\\n`));
      const l = await run(SSH_ADD, ['-l'], { env: { ...env(), SSH_AUTH_SOCK: first.sock } });
      assert.equal(l.stdout, 'The agent has no identities.\n');
      await stop(first.pid);
      assert.ok(!fs.existsSync(dir), 'the directory goes with the agent');
    });

    it('never uses a directory planted at the name the pointer gives, once the agent is gone', async (t) => {
      if (!isRoot) return t.skip('planting a directory owned by another user needs root');
      const first = await start();
      const dir = path.dirname(first.sock);
      await stop(first.pid);
      // Its name was visible in the temp dir: another user re-creates it.
      plant(dir);
      const again = await start();
      assert.notEqual(path.dirname(again.sock), dir);
      assert.equal(fs.statSync(path.dirname(again.sock)).uid, process.getuid!());
      assert.deepEqual(fs.readdirSync(dir), []);
      assert.equal(fs.readFileSync(pointer(), 'utf8').trim(), path.dirname(again.sock));
      // Nor does tsagent status talk to a socket there.
      await stop(again.pid);
      const status = await run(process.execPath, [TSAGENT_MAIN, 'status'], { env: env() });
      assert.equal(status.code, 2, status.stdout);
      assert.ok(!status.stdout.includes(tmp), status.stdout);
    });
  });
}
