// Acceptance: agent forwarding across two real OpenSSH hops. The test is
// "sparrow"; two sshd's on loopback ports are "goober" and "boomer"; the key
// exists only in the agent under test. Every outcome must be the same with
// OpenSSH's ssh-agent; tsagent's audit log, confirm prompt and `tsagent log`
// are checked on top.

import { AuditRecord as Audit, readAudit } from '../src/agent/audit';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS, REPO, TSAGENTS } from './fixtures/agent';
import { hopAgent } from './fixtures/hop-agent';
import { Hops, SequencedAskpass, Spawned, startHops } from './fixtures/hops';
import { Askpass, TestKey, keyBlobText, keyType, makeKey } from './fixtures/keys';
import {
  SSH,
  SSHD,
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
} from './fixtures/run';

const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN, '/usr/bin/scp']);
const HOST = os.hostname();

/** The agent's own reader: a record is an AuditRecord. */
const readAuditFile = readAudit;

/** `tsagent log ARGS` through runLog (main.ts may not route `log` yet). */
function tsagentLog(args: string[], env: Record<string, string | undefined> = {}) {
  const logModule = path.join(REPO, 'dist', 'src', 'cli', 'log.js');
  return run(
    process.execPath,
    [
      '-e',
      `require(${JSON.stringify(logModule)}).runLog(process.argv.slice(1)).then((c) => process.exit(c))`,
      '--',
      ...args,
    ],
    { env: baseEnv(env), timeout: 15_000 },
  );
}

let dir: string;
let hops: Hops;
let key: TestKey;

before(async () => {
  if (skip) return;
  dir = mkTemp();
  key = await makeKey(dir, keyType('ed25519'), {
    name: 'sparrow-key',
    comment: 'sparrow-key@tsagent-test',
  });
  hops = await startHops(`${keyBlobText(key)} ${key.comment}\n`);
});

after(async () => {
  await hops?.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`forwarding sparrow → goober → boomer with ${agent.name}`, { skip }, () => {
    const isTsagent = agent.kind === 'tsagent';
    let askpass: SequencedAskpass;
    let lockpass: Askpass;
    let seen = 0;

    const a = hopAgent(agent, () => hops, {
      auditLog: isTsagent,
      prepare: (adir) => {
        askpass = new SequencedAskpass(fs.mkdtempSync(path.join(adir, 'askpass-')));
        lockpass = new Askpass(fs.mkdtempSync(path.join(adir, 'lockpass-')));
        lockpass.answer('lock-secret');
        return { ...askpass.env(), DISPLAY: ':0' };
      },
    });
    const sshAdd = a.sshAdd;
    const ssh = (args: string[]): Spawned => hops.ssh(a.sock, args);
    /** ssh -A goober ssh boomer CMD… (ssh options of each hop given as arrays). */
    const chain = (first: string[], second: string[], cmd: string[]): Spawned =>
      ssh([...first, 'goober', 'ssh', '-F', hops.config, ...second, 'boomer', ...cmd]);

    async function only(k: TestKey, opts: string[] = []): Promise<void> {
      const d = await sshAdd(['-D']);
      assert.equal(d.code, 0, d.stderr);
      const r = await sshAdd([...opts, k.priv]);
      assert.equal(r.code, 0, r.stderr);
    }

    /** Audit records written since the last call (none for OpenSSH's agent). */
    function newAudit(): Audit[] {
      if (!isTsagent) return [];
      const all = readAuditFile(a.auditFile);
      const fresh = all.slice(seen);
      seen = all.length;
      return fresh;
    }
    /** The essentials of the new audit records, to compare with deepEqual. */
    function auditSummary(pid?: number) {
      return newAudit().map((r) => {
        assert.equal(r.key, key.fingerprint);
        assert.equal(r.comment, key.comment);
        assert.ok(!Number.isNaN(Date.parse(r.time)), r.time);
        if (pid !== undefined) {
          assert.equal(r.requester.pid, pid);
          assert.equal(r.requester.uid, process.getuid?.());
          assert.match(r.requester.command ?? '', /^\S*ssh -F \S+ /);
        }
        const s: Record<string, unknown> = {
          decision: r.decision,
          hops: r.hops,
          forwarded: r.forwarded,
        };
        if (r.user !== undefined) s.user = r.user;
        if (r.reason !== undefined) s.reason = r.reason;
        return s;
      });
    }
    // Every signature here is a login, so every record names the user logged in as.
    const login = (hopsList: string[], extra: Record<string, unknown> = {}) => ({
      decision: 'allowed',
      hops: hopsList,
      forwarded: false,
      user: hops.goober.user,
      ...extra,
    });
    const fwd = (extra: Record<string, unknown> = {}) => ({
      decision: 'allowed',
      hops: [HOST, 'goober', 'boomer'],
      forwarded: true,
      user: hops.goober.user,
      ...extra,
    });

    it('ssh -A goober ssh boomer: both hops authenticate with the key only in the agent', async () => {
      await only(key);
      newAudit();
      const p = chain(['-A'], [], ['echo', 'on-boomer']);
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'on-boomer\n');
      assert.match(hops.boomer.log(), /Accepted publickey for \S+ from 127\.0\.0\.1/);
      assert.ok(hops.boomer.log().includes(`ED25519 ${key.fingerprint}`), hops.boomer.log());
      assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
    });

    it('ssh-add -l works on boomer through two forwards', async () => {
      await only(key);
      newAudit();
      const p = chain(['-A'], ['-A'], ['ssh-add', '-l']);
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${key.listLine}\n`);
      assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
    });

    it('without -A the second hop fails', async () => {
      await only(key);
      newAudit();
      const p = chain([], [], ['true']);
      const r = await p.done;
      assert.equal(r.code, 255, r.stderr);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
      assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober'])] : []);

      // -A on the first hop only: on boomer there is no agent.
      const q = chain(['-A'], [], ['ssh-add', '-l']);
      const r2 = await q.done;
      assert.equal(r2.code, 2, r2.stderr);
      assert.match(r2.stderr, /Could not open a connection to your authentication agent/);
      assert.deepEqual(auditSummary(q.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
    });

    it('scp from goober to boomer uses the forwarded agent, without prompting', async () => {
      await only(key);
      askpass.reset();
      newAudit();
      const src = path.join(a.dir, 'scp-source');
      const dst = path.join(a.dir, 'scp-copy');
      fs.writeFileSync(src, 'carried across two hops\n');
      const p = ssh(['-A', 'goober', 'scp', '-F', hops.config, src, `boomer:${dst}`]);
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(dst, 'utf8'), 'carried across two hops\n');
      assert.deepEqual(askpass.calls(), []);
      assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
    });

    /**
     * On goober, with one forwarded connection open: ssh to boomer, wait for
     * sparrow to `change` the agent, ssh to boomer again.
     */
    async function twoLogins(change: () => Promise<void>) {
      const go = path.join(a.dir, `go-${Date.now()}`);
      const remote =
        `ssh -F ${hops.config} boomer true && echo first-ok || echo first-failed; ` +
        `i=0; while [ ! -e ${go} ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; ` +
        `ssh -F ${hops.config} boomer true && echo second-ok || echo second-failed`;
      const p = ssh(['-A', 'goober', remote]);
      await p.waitForStdout(/first-/);
      await change();
      fs.writeFileSync(go, '');
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      return { r, pid: p.pid };
    }

    it('ssh-add -D on sparrow breaks the chain, also on an open forwarded connection', async () => {
      await only(key);
      newAudit();
      const { r, pid } = await twoLogins(async () => {
        const d = await sshAdd(['-D']);
        assert.equal(d.code, 0, d.stderr);
      });
      assert.equal(r.stdout, 'first-ok\nsecond-failed\n', r.stderr);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
      assert.deepEqual(auditSummary(pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);

      const again = await chain(['-A'], [], ['true']).done;
      assert.equal(again.code, 255);
      assert.match(again.stderr, /Permission denied \(publickey\)/);
      assert.deepEqual(auditSummary(), []);
    });

    it('ssh-add -x on sparrow breaks the chain until ssh-add -X', async () => {
      await only(key);
      newAudit();
      const { r, pid } = await twoLogins(async () => {
        const x = await sshAdd(['-x'], lockpass.env());
        assert.equal(x.code, 0, x.stderr);
        assert.match(x.stderr, /Agent locked/);
      });
      assert.equal(r.stdout, 'first-ok\nsecond-failed\n', r.stderr);
      assert.deepEqual(auditSummary(pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);

      const locked = await chain(['-A'], [], ['true']).done;
      assert.equal(locked.code, 255);
      assert.match(locked.stderr, /Permission denied \(publickey\)/);

      const X = await sshAdd(['-X'], lockpass.env());
      assert.equal(X.code, 0, X.stderr);
      assert.match(X.stderr, /Agent unlocked/);
      const p = chain(['-A'], [], ['true']);
      const unlocked = await p.done;
      assert.equal(unlocked.code, 0, unlocked.stderr);
      assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
    });

    describe('destination constraints (ssh-add -h)', () => {
      const constrain = (...specs: string[]) =>
        only(key, ['-H', hops.knownHosts, ...specs.flatMap((s) => ['-h', s])]);

      it("-h goober -h 'goober>boomer': the listed chain works", async () => {
        await constrain('goober', 'goober>boomer');
        newAudit();
        const p = chain(['-A'], [], ['echo', 'on-boomer']);
        const r = await p.done;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'on-boomer\n');
        assert.deepEqual(
          auditSummary(p.pid),
          isTsagent
            ? [login([HOST, 'goober'], { user: hops.goober.user }), fwd({ user: hops.goober.user })]
            : [],
        );
      });

      it("-h goober -h 'goober>boomer': hops that are not listed are refused", async () => {
        await constrain('goober', 'goober>boomer');
        newAudit();
        // Straight to boomer: not listed from here.
        const direct = await ssh(['boomer', 'true']).done;
        assert.equal(direct.code, 255);
        assert.match(direct.stderr, /Permission denied \(publickey\)/);
        // Beyond boomer: the key is hidden there.
        const beyond = await chain(['-A'], ['-A'], ['ssh-add', '-l']).done;
        assert.equal(beyond.code, 1, beyond.stderr);
        assert.equal(beyond.stdout, 'The agent has no identities.\n');
        // On goober itself the key is listed (it may go on to boomer).
        const onGoober = await ssh(['-A', 'goober', 'ssh-add', '-l']).done;
        assert.equal(onGoober.code, 0, onGoober.stderr);
        assert.equal(onGoober.stdout, `${key.listLine}\n`);
        // Nothing was refused: hidden keys are never offered, so never signed with.
        const user = hops.goober.user;
        assert.deepEqual(
          auditSummary(),
          isTsagent
            ? [login([HOST, 'goober'], { user }), fwd({ user }), login([HOST, 'goober'], { user })]
            : [],
        );
      });

      it('-h goober alone: goober works, goober → boomer and boomer directly are refused', async () => {
        await constrain('goober');
        newAudit();
        const p = ssh(['-A', 'goober', 'echo', 'on-goober']);
        const first = await p.done;
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.stdout, 'on-goober\n');
        const hidden = await ssh(['-A', 'goober', 'ssh-add', '-l']).done;
        assert.equal(hidden.code, 1, hidden.stderr);
        assert.equal(hidden.stdout, 'The agent has no identities.\n');
        const onward = await chain(['-A'], [], ['true']).done;
        assert.equal(onward.code, 255);
        assert.match(onward.stderr, /Permission denied \(publickey\)/);
        const direct = await ssh(['boomer', 'true']).done;
        assert.equal(direct.code, 255);
        assert.match(direct.stderr, /Permission denied \(publickey\)/);
        const user = hops.goober.user;
        assert.deepEqual(
          auditSummary(),
          isTsagent
            ? [
                login([HOST, 'goober'], { user }),
                login([HOST, 'goober'], { user }),
                login([HOST, 'goober'], { user }),
              ]
            : [],
        );
      });

      it("'goober>nobody@boomer': the key is offered on goober but signing for root is refused", async () => {
        await constrain('goober', 'goober>nobody@boomer');
        newAudit();
        const p = chain(['-A'], [], ['true']);
        const r = await p.done;
        assert.equal(r.code, 255);
        assert.match(r.stderr, /agent refused operation/);
        assert.match(r.stderr, /Permission denied \(publickey\)/);
        assert.deepEqual(
          auditSummary(p.pid),
          isTsagent
            ? [
                login([HOST, 'goober'], { user: hops.goober.user }),
                {
                  decision: 'refused',
                  hops: [HOST, 'goober', 'boomer'],
                  forwarded: true,
                  reason: 'destination: not permitted for this destination',
                },
              ]
            : [],
        );
      });

      it('a constrained key signs nothing but a login (ssh-keygen -Y sign is refused)', async () => {
        await constrain('goober');
        newAudit();
        const data = path.join(a.dir, 'to-sign');
        fs.writeFileSync(data, 'hello\n');
        const r = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', key.pub, '-n', 'file', data], {
          env: a.env(),
        });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /agent refused operation/);
        assert.equal(fs.existsSync(`${data}.sig`), false);
        assert.deepEqual(
          auditSummary(),
          isTsagent
            ? [
                {
                  decision: 'refused',
                  hops: [],
                  forwarded: false,
                  reason: 'destination: destination-constrained key used on an unbound connection',
                },
              ]
            : [],
        );
        // Unconstrained, the same request signs.
        await only(key);
        const ok = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', key.pub, '-n', 'file', data], {
          env: a.env(),
        });
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(
          auditSummary(),
          isTsagent ? [{ decision: 'allowed', hops: [], forwarded: false }] : [],
        );
      });
    });

    describe('confirmation (ssh-add -c)', () => {
      it('every use asks, forwarded ones too; the prompt names the key and, for tsagent, the requester and the chain', async () => {
        await only(key, ['-c']);
        askpass.reset();
        askpass.answer('yes');
        newAudit();
        const p = chain(['-A'], [], ['echo', 'on-boomer']);
        const r = await p.done;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'on-boomer\n');
        const calls = askpass.calls();
        assert.equal(calls.length, 2, JSON.stringify(calls));
        for (const c of calls) {
          assert.equal(c.prompt, 'confirm');
          assert.equal(c.argc, 1);
          assert.ok(
            c.argv.startsWith(
              `Allow use of key ${key.comment}?\nKey fingerprint ${key.fingerprint}.`,
            ),
            c.argv,
          );
        }
        if (isTsagent) {
          const requester = new RegExp(
            `\\nRequested by pid ${p.pid} \\(self-reported command: \\S*ssh -F \\S+ -A goober ssh -F \\S+ boomer echo on-boomer\\), uid ${process.getuid?.()}\\.`,
          );
          assert.match(calls[0].argv, requester);
          assert.match(calls[1].argv, requester);
          assert.ok(calls[0].argv.endsWith(`\nLogin: ${HOST} \u2192 goober.`), calls[0].argv);
          assert.ok(
            calls[1].argv.endsWith(`\nForwarded: ${HOST} \u2192 goober \u2192 boomer.`),
            calls[1].argv,
          );
        }
        assert.deepEqual(auditSummary(p.pid), isTsagent ? [login([HOST, 'goober']), fwd()] : []);
      });

      it('answering no refuses the forwarded use', async () => {
        await only(key, ['-c']);
        askpass.reset();
        newAudit();
        // Yes for the login to goober, then no for goober → boomer.
        askpass.sequence([0, 1]);
        const p = chain(['-A'], [], ['true']);
        const r = await p.done;
        assert.equal(r.code, 255);
        assert.match(r.stderr, /agent refused operation/);
        assert.match(r.stderr, /Permission denied \(publickey\)/);
        assert.equal(askpass.calls().length, 2);
        assert.deepEqual(
          auditSummary(p.pid),
          isTsagent
            ? [
                login([HOST, 'goober']),
                {
                  decision: 'refused',
                  hops: [HOST, 'goober', 'boomer'],
                  forwarded: true,
                  user: hops.goober.user,
                  reason: 'refused: user refused',
                },
              ]
            : [],
        );
        askpass.reset();
        askpass.answer('');
      });
    });

    if (isTsagent) {
      it('tsagent log prints every record, as lines and as JSON', async () => {
        const records = readAuditFile(a.auditFile);
        assert.ok(records.length >= 20, `${records.length} records`);
        const json = await tsagentLog(['--json', '--file', a.auditFile]);
        assert.equal(json.code, 0, json.stderr);
        assert.equal(json.stdout, fs.readFileSync(a.auditFile, 'utf8'));
        const human = await tsagentLog(['--file', a.auditFile]);
        assert.equal(human.code, 0, human.stderr);
        const lines = human.stdout.split('\n').slice(0, -1);
        assert.equal(lines.length, records.length);
        for (const [i, rec] of records.entries()) {
          const l = lines[i];
          assert.ok(l.startsWith(`${rec.time} ${rec.decision} ${rec.key} (${rec.comment}) `), l);
          assert.ok(l.includes(`by pid ${rec.requester.pid} uid ${rec.requester.uid} [`), l);
          if (rec.hops.length > 0)
            assert.ok(
              l.includes(`${rec.forwarded ? 'forwarded' : 'login'} ${rec.hops.join(' \u2192 ')}`),
              l,
            );
          else assert.ok(l.includes(' local'), l);
          if (rec.user) assert.ok(l.includes(` as ${rec.user}`), l);
          if (rec.reason) assert.ok(l.endsWith(` reason: ${rec.reason}`), l);
        }
        assert.ok(
          lines.some(
            (l) =>
              l.includes(`allowed ${key.fingerprint} (${key.comment}) by pid `) &&
              l.includes(`forwarded ${HOST} \u2192 goober \u2192 boomer`),
          ),
        );
        // The default file: $TSAGENT_AUDIT_LOG.
        const viaEnv = await tsagentLog(['--json'], { TSAGENT_AUDIT_LOG: a.auditFile });
        assert.equal(viaEnv.stdout, json.stdout);
      });
    }
  });
}

for (const agent of TSAGENTS) {
  describe(`${agent.name} --confirm-forwarded`, { skip }, () => {
    let askpass: Askpass;
    const a = hopAgent(agent, () => hops, {
      args: ['--confirm-forwarded'],
      auditLog: true,
      prepare: (adir) => {
        askpass = new Askpass(adir);
        return { ...askpass.env(), DISPLAY: ':0' };
      },
    });
    before(async () => {
      const r = await run(SSH_ADD, [key.priv], { env: baseEnv({ SSH_AUTH_SOCK: a.sock }) });
      assert.equal(r.code, 0, r.stderr);
    });

    it('local use does not ask', async () => {
      askpass.reset();
      const direct = await hops.ssh(a.sock, ['boomer', 'true']).done;
      assert.equal(direct.code, 0, direct.stderr);
      const hop1 = await hops.ssh(a.sock, ['-A', 'goober', 'true']).done;
      assert.equal(hop1.code, 0, hop1.stderr);
      const data = path.join(a.dir, 'to-sign');
      fs.writeFileSync(data, 'hello\n');
      const sig = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', key.pub, '-n', 'file', data], {
        env: baseEnv({ SSH_AUTH_SOCK: a.sock }),
      });
      assert.equal(sig.code, 0, sig.stderr);
      assert.deepEqual(askpass.calls(), []);
    });

    it('forwarded use asks, naming the chain; yes allows it', async () => {
      askpass.reset();
      askpass.answer('yes');
      const p = hops.ssh(a.sock, ['-A', 'goober', 'ssh', '-F', hops.config, 'boomer', 'true']);
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      const calls = askpass.calls();
      assert.equal(calls.length, 1, JSON.stringify(calls));
      assert.equal(calls[0].prompt, 'confirm');
      assert.ok(
        calls[0].argv.startsWith(
          `Allow use of key ${key.comment}?\nKey fingerprint ${key.fingerprint}.\n`,
        ),
        calls[0].argv,
      );
      assert.match(calls[0].argv, new RegExp(`\\nRequested by pid ${p.pid} \\(`));
      assert.ok(
        calls[0].argv.endsWith(`\nForwarded: ${HOST} \u2192 goober \u2192 boomer.`),
        calls[0].argv,
      );
    });

    it('answering no refuses it, and the audit log says so', async () => {
      askpass.reset();
      askpass.answer('', 1);
      const before = readAuditFile(a.auditFile).length;
      const p = hops.ssh(a.sock, ['-A', 'goober', 'ssh', '-F', hops.config, 'boomer', 'true']);
      const r = await p.done;
      assert.equal(r.code, 255);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
      assert.equal(askpass.calls().length, 1);
      const recs = readAuditFile(a.auditFile).slice(before);
      assert.deepEqual(
        recs.map((x) => [x.decision, x.hops, x.forwarded, x.reason]),
        [
          ['allowed', [HOST, 'goober'], false, undefined],
          ['refused', [HOST, 'goober', 'boomer'], true, 'refused: user refused'],
        ],
      );
      assert.equal(recs[1].requester.pid, p.pid);
    });
  });
}
