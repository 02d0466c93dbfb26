// contrib/: the systemd units pass `systemd-analyze verify` (no message at all),
// and say what tsagent(1) says: the default socket, the pid file, SIGUSR1, and
// the socket unit that starts the agent on first use (test/socket-activation
// runs the agent the way it starts it).
//
// Not tested here: running them under a real user manager (there is none in
// CI's container). ExecStart=tsagent is resolved by systemd's own search path
// (/usr/local/bin, /usr/bin …); the check replaces it with a stand-in there,
// since tsagent is not installed system-wide on a test machine.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkTemp, rmTemp, run } from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');
const CONTRIB = path.join(REPO, 'contrib');
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));

function unitText(name: string): string {
  return fs.readFileSync(path.join(CONTRIB, name), 'utf8');
}

/** `Key=value` lines of one section. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur = '';
  for (const line of text.split('\n')) {
    const h = /^\[(.+)\]$/.exec(line.trim());
    if (h) cur = h[1];
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv && cur === name) out.set(kv[1], [...(out.get(kv[1]) ?? []), kv[2]]);
  }
  return out;
}

describe('contrib/ systemd units', () => {
  let dir: string;
  before(() => {
    dir = mkTemp('tsagent-systemd-');
  });
  after(() => rmTemp(dir));

  async function verify(t: { skip: (m: string) => void }, user: boolean, units: string[]) {
    if (!ANALYZE) {
      if (process.env.CI)
        throw new Error('systemd-analyze is required on CI (apt-get install systemd)');
      t.skip('systemd-analyze not installed');
      return;
    }
    const runtime = path.join(dir, 'run');
    fs.mkdirSync(runtime, { recursive: true, mode: 0o700 });
    const args = ['verify', '--man=no', ...(user ? ['--user'] : []), ...units];
    const r = await run(ANALYZE, args, {
      env: { PATH: '/usr/bin:/bin', HOME: dir, XDG_RUNTIME_DIR: runtime, LANG: 'C' },
      cwd: dir,
    });
    assert.equal(r.stderr + r.stdout, '', `systemd-analyze ${args.join(' ')}`);
    assert.equal(r.code, 0);
  }

  it('tsagent.service: a forking user service on the default socket', async (t) => {
    const text = unitText('tsagent.service');
    const svc = section(text, 'Service');
    assert.deepEqual(svc.get('Type'), ['forking']);
    assert.deepEqual(svc.get('ExecStart'), ['tsagent -s']);
    assert.deepEqual(svc.get('PIDFile'), ['%t/tsagent/agent.pid']);
    assert.ok(
      svc.get('ExecStartPost')?.some((v) => v.includes('SSH_AUTH_SOCK=%t/tsagent/agent.sock')),
    );
    assert.deepEqual(section(text, 'Install').get('WantedBy'), ['default.target']);
    // A stand-in for the tsagent binary, where verify can find it.
    const stub = path.join(dir, 'bin', 'tsagent');
    fs.mkdirSync(path.dirname(stub), { recursive: true });
    fs.writeFileSync(stub, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    fs.writeFileSync(
      path.join(dir, 'tsagent.service'),
      text.replace(/^ExecStart=tsagent /m, `ExecStart=${stub} `),
    );
    await verify(t, true, ['./tsagent.service']);
  });

  it('tsagent.socket: the default socket in a private directory, for tsagent.service', async (t) => {
    const text = unitText('tsagent.socket');
    const sock = section(text, 'Socket');
    assert.deepEqual(sock.get('ListenStream'), ['%t/tsagent/agent.sock']);
    assert.deepEqual(sock.get('DirectoryMode'), ['0700']);
    assert.deepEqual(sock.get('SocketMode'), ['0600']);
    // One socket (the agent refuses more), a stream one, handed over whole (no Accept=yes).
    assert.equal(sock.get('Accept'), undefined);
    for (const k of ['ListenDatagram', 'ListenSequentialPacket', 'ListenFIFO'])
      assert.equal(sock.get(k), undefined, k);
    assert.deepEqual(section(text, 'Install').get('WantedBy'), ['sockets.target']);
    // The service it starts is tsagent.service (same name): no Service= to drift.
    assert.equal(sock.get('Service'), undefined);
    const stub = path.join(dir, 'bin', 'tsagent');
    fs.mkdirSync(path.dirname(stub), { recursive: true });
    fs.writeFileSync(stub, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    fs.writeFileSync(
      path.join(dir, 'tsagent.service'),
      unitText('tsagent.service').replace(/^ExecStart=tsagent /m, `ExecStart=${stub} `),
    );
    fs.writeFileSync(path.join(dir, 'tsagent.socket'), text);
    await verify(t, true, ['./tsagent.socket', './tsagent.service']);
  });

  it('tsagent-sleep@.service: a system template that sends SIGUSR1 before sleep', async (t) => {
    const text = unitText('tsagent-sleep@.service');
    assert.deepEqual(section(text, 'Unit').get('Before'), ['sleep.target']);
    assert.deepEqual(section(text, 'Install').get('WantedBy'), ['sleep.target']);
    const svc = section(text, 'Service');
    assert.deepEqual(svc.get('User'), ['%i']);
    assert.match(svc.get('ExecStart')![0], /runtime-dir.*agent\.pid.*comm.*kill -USR1/);
    fs.writeFileSync(path.join(dir, 'tsagent-sleep@.service'), text);
    await verify(t, false, ['./tsagent-sleep@root.service']);
  });

  it('the sleep hook locks a running agent, and signals nothing that is not one', async () => {
    // Run its ExecStart (systemd's $$ unescaped) against stand-in agent pid files.
    const text = unitText('tsagent-sleep@.service');
    const exec = section(text, 'Service').get('ExecStart')![0].replace(/\$\$/g, '$');
    const m = /^\/bin\/sh -c '(.*)'$/.exec(exec);
    assert.ok(m, exec);
    // Its two places: XDG_RUNTIME_DIR's (moved into the temp dir), and the one the
    // pointer file in HOME's state directory names (daemon/paths.ts).
    assert.ok(m[1].includes('/run/user/$u/tsagent'), m[1]);
    assert.ok(m[1].includes('/tsagent/runtime-dir.$(uname -n)'), m[1]);
    const script = m[1].replace(/\/run\/user\//g, `${dir}/user/`);
    const home = path.join(dir, 'sleep-home');
    const pointer = path.join(home, '.local', 'state', 'tsagent', `runtime-dir.${os.hostname()}`);
    const runtimeDir = path.join(dir, 'user', `${process.getuid!()}`, 'tsagent');
    const tmpDir = path.join(dir, 'tsagent-AbC123');
    const { spawn } = await import('node:child_process');
    /** A child that records SIGUSR1 stands in for an agent (named `title`). */
    const standIn = async (title: string) => {
      const child = spawn(
        process.execPath,
        [
          '-e',
          `process.title=${JSON.stringify(title)};process.on('SIGUSR1',()=>{console.log('locked');process.exit(0)});console.log('ready');setTimeout(()=>{},5000)`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const exited = new Promise((r) => child.on('exit', r));
      // SIGUSR1 before the handler is in place would start Node's inspector instead.
      await new Promise<void>((r) => {
        const ready = () => (out.includes('ready') ? r() : child.stdout!.once('data', ready));
        ready();
      });
      return { child, exited, out: () => out.trim() };
    };
    const agentA = await standIn('tsagent');
    const agentB = await standIn('tsagent');
    const other = await standIn('not-an-agent');
    try {
      for (const d of [runtimeDir, tmpDir]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
      fs.mkdirSync(path.dirname(pointer), { recursive: true, mode: 0o700 });
      fs.writeFileSync(pointer, `${tmpDir}\n`);
      fs.writeFileSync(path.join(runtimeDir, 'agent.pid'), `${agentA.child.pid}\n`);
      fs.writeFileSync(path.join(tmpDir, 'agent.pid'), `${agentB.child.pid}\n`);
      let r = await run('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin', HOME: home } });
      assert.equal(r.code, 0, r.stderr);
      await Promise.all([agentA.exited, agentB.exited]);
      assert.equal(agentA.out(), 'ready\nlocked');
      assert.equal(agentB.out(), 'ready\nlocked');
      // A pid file naming another program: no signal (SIGUSR1 would end it).
      fs.writeFileSync(path.join(tmpDir, 'agent.pid'), `${other.child.pid}\n`);
      fs.writeFileSync(path.join(runtimeDir, 'agent.pid'), `../${other.child.pid}\n`);
      r = await run('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin', HOME: home } });
      assert.equal(r.code, 0, r.stderr);
      await sleep(300);
      assert.equal(other.out(), 'ready');
      assert.equal(other.child.exitCode, null, 'still running');
    } finally {
      for (const s of [agentA, agentB, other]) s.child.kill('SIGKILL');
    }
  });

  it('tsagent-environment.conf sets SSH_AUTH_SOCK to the default socket', () => {
    const lines = unitText('tsagent-environment.conf')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(lines, ['SSH_AUTH_SOCK=${XDG_RUNTIME_DIR}/tsagent/agent.sock']);
  });
});
