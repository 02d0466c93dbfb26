// Acceptance: OpenSSH's ssh-add against a running agent (tsagent and/or
// /usr/bin/ssh-agent, see fixtures/agent.ts). Exact texts are OpenSSH 9.x
// ssh-add's; every expectation here must also hold for OpenSSH's own agent.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS, AgentSpec, RunningAgent, startAgent } from './fixtures/agent';
import { Askpass, KEY_TYPES, TestKey, makeKey } from './fixtures/keys';
import {
  RunResult,
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
  waitFor,
} from './fixtures/run';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

let dir: string;
/** One unencrypted key per type, and one with a passphrase per type. */
const keys: TestKey[] = [];
const pwKeys: TestKey[] = [];
let askpass: Askpass;

before(async () => {
  if (skip) return;
  dir = mkTemp();
  askpass = new Askpass(dir);
  await Promise.all(
    KEY_TYPES.map(async (t, i) => {
      keys[i] = await makeKey(dir, t);
      pwKeys[i] = await makeKey(dir, t, {
        name: `${t.name}-pw`,
        passphrase: `secret ${t.name} passphrase`,
      });
    }),
  );
});

after(() => rmTemp(dir));

/** ssh-add in the key directory (so it prints relative names), SSH_AUTH_SOCK set explicitly. */
async function sshAdd(
  sock: string | undefined,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  const r = await run(SSH_ADD, args, {
    env: baseEnv({ SSH_AUTH_SOCK: sock, ...env }),
    cwd: dir,
  });
  // ssh-add's error() lines end in \r\n, its plain messages in \n: compare both as \n.
  const norm = (s: string) => s.split(dir).join('<tmp>').replace(/\r\n/g, '\n');
  return { ...r, stdout: norm(r.stdout), stderr: norm(r.stderr) };
}

const name = (k: TestKey) => path.basename(k.priv);
const pubName = (k: TestKey) => path.basename(k.pub);

/** Assert exit code, stdout and stderr at once (so a failure shows all three). */
function expectRun(r: RunResult, code: number, stdout: string, stderr: string): void {
  assert.deepEqual({ code: r.code, stdout: r.stdout, stderr: r.stderr }, { code, stdout, stderr });
}

const NO_IDENTITIES = 'The agent has no identities.\n';
const added = (k: TestKey) => `Identity added: ${name(k)} (${k.comment})\n`;
const removed = (k: TestKey) => `Identity removed: ${name(k)} ${k.type.label} (${k.comment})\n`;
const lines = (ls: string[]) => ls.map((l) => `${l}\n`).join('');

describe('ssh-add without an agent', { skip }, () => {
  it('SSH_AUTH_SOCK unset: exit 2, "Could not open a connection"', async () => {
    for (const args of [['-l'], ['-L'], ['-D'], ['-x']]) {
      const r = await sshAdd(undefined, args);
      expectRun(r, 2, '', 'Could not open a connection to your authentication agent.\n');
    }
    const r = await sshAdd(undefined, [name(keys[0])]);
    expectRun(r, 2, '', 'Could not open a connection to your authentication agent.\n');
  });

  it('SSH_AUTH_SOCK naming no socket: exit 2, "No such file or directory"', async () => {
    const r = await sshAdd(path.join(dir, 'no-such-agent.sock'), ['-l']);
    expectRun(r, 2, '', 'Error connecting to agent: No such file or directory\n');
  });
});

for (const agent of AGENTS) {
  describe(`ssh-add against ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    before(async () => {
      a = await startAgent(agent);
    });
    after(() => a?.stop());
    const add = (args: string[], env?: Record<string, string | undefined>) =>
      sshAdd(a.sock, args, env);

    it('empty agent: -l, -L, -D, -d, -T', async () => {
      expectRun(await add(['-l']), 1, NO_IDENTITIES, '');
      expectRun(await add(['-L']), 1, NO_IDENTITIES, '');
      expectRun(await add(['-D']), 0, '', 'All identities removed.\n');
      const k = keys[0];
      expectRun(
        await add(['-d', name(k)]),
        1,
        '',
        `Could not remove identity "${name(k)}": agent refused operation\n`,
      );
      expectRun(
        await add(['-T', pubName(k)]),
        1,
        '',
        `Agent signature failed for ${pubName(k)}: agent refused operation\n`,
      );
    });

    for (const [i, t] of KEY_TYPES.entries()) {
      it(`${t.name}: add, -l, -L, -T, add again, -d, -d again`, async () => {
        const k = keys[i];
        expectRun(await add([name(k)]), 0, '', added(k));
        expectRun(await add(['-l']), 0, `${k.listLine}\n`, '');
        expectRun(await add(['-L']), 0, `${k.publicLine}\n`, '');
        expectRun(await add(['-T', pubName(k)]), 0, '', '');
        // Adding a key twice replaces it: still one identity.
        expectRun(await add([name(k)]), 0, '', added(k));
        expectRun(await add(['-l']), 0, `${k.listLine}\n`, '');
        expectRun(await add(['-d', name(k)]), 0, '', removed(k));
        expectRun(
          await add(['-d', name(k)]),
          1,
          '',
          `Could not remove identity "${name(k)}": agent refused operation\n`,
        );
        expectRun(await add(['-l']), 1, NO_IDENTITIES, '');
      });

      it(`${t.name} with a passphrase: ssh-add asks through SSH_ASKPASS`, async () => {
        const k = pwKeys[i];
        // SSH_ASKPASS_REQUIRE=force, no DISPLAY.
        askpass.reset();
        askpass.answer(k.passphrase);
        expectRun(await add([name(k)], askpass.env({ DISPLAY: undefined })), 0, '', added(k));
        assert.deepEqual(askpass.calls(), [
          { prompt: '<unset>', argc: 1, argv: `Enter passphrase for ${name(k)}: ` },
        ]);
        expectRun(await add(['-l']), 0, `${k.listLine}\n`, '');
        expectRun(await add(['-T', pubName(k)]), 0, '', '');
        expectRun(await add(['-D']), 0, '', 'All identities removed.\n');

        // DISPLAY set, stdin not a terminal: ssh-add uses SSH_ASKPASS as well.
        askpass.reset();
        expectRun(
          await add([name(k)], { SSH_ASKPASS: askpass.program, DISPLAY: ':0' }),
          0,
          '',
          added(k),
        );
        assert.equal(askpass.calls().length, 1);
        expectRun(await add(['-l']), 0, `${k.listLine}\n`, '');

        // An empty answer gives up: nothing is added.
        expectRun(await add(['-D']), 0, '', 'All identities removed.\n');
        askpass.answer('');
        expectRun(await add([name(k)], askpass.env()), 1, '', '');
        expectRun(await add(['-l']), 1, NO_IDENTITIES, '');
      });
    }

    it('every key type at once: -l/-L in the order added, -D removes all', async () => {
      const all = [...keys].reverse();
      expectRun(await add(all.map(name)), 0, '', all.map(added).join(''));
      expectRun(await add(['-l']), 0, lines(all.map((k) => k.listLine)), '');
      expectRun(await add(['-L']), 0, lines(all.map((k) => k.publicLine)), '');
      for (const k of all) expectRun(await add(['-T', pubName(k)]), 0, '', '');
      // -d with the .pub file removes just that key.
      const gone = all[2];
      expectRun(
        await add(['-d', pubName(gone)]),
        0,
        '',
        removed(gone).replace(name(gone), pubName(gone)),
      );
      const rest = all.filter((k) => k !== gone);
      expectRun(await add(['-l']), 0, lines(rest.map((k) => k.listLine)), '');
      expectRun(await add(['-D']), 0, '', 'All identities removed.\n');
      expectRun(await add(['-l']), 1, NO_IDENTITIES, '');
    });

    it('-t LIFE: the key is removed when its lifetime ends, others stay', async () => {
      const [short, long] = [keys[0], keys[1]];
      expectRun(await add([name(long)]), 0, '', added(long));
      expectRun(
        await add(['-t', '1', name(short)]),
        0,
        '',
        `${added(short)}Lifetime set to 1 seconds\n`,
      );
      await waitFor('the key with -t 1 to expire', async () => {
        const r = await add(['-l']);
        return r.code === 0 && !r.stdout.includes(short.fingerprint);
      });
      expectRun(await add(['-l']), 0, `${long.listLine}\n`, '');
      expectRun(
        await add(['-T', pubName(short)]),
        1,
        '',
        `Agent signature failed for ${pubName(short)}: agent refused operation\n`,
      );
      expectRun(await add(['-t', 'abc', name(short)]), 1, '', 'Invalid lifetime\n');
      expectRun(await add(['-D']), 0, '', 'All identities removed.\n');
    });

    it('-x / -X: lock and unlock with a password (SSH_ASKPASS, REQUIRE=force, no DISPLAY)', async () => {
      const [k1, k2] = [keys[0], keys[4]];
      expectRun(await add([name(k1), name(k2)]), 0, '', added(k1) + added(k2));
      const listed = lines([k1.listLine, k2.listLine]);
      const env = askpass.env({ DISPLAY: undefined });

      askpass.reset();
      askpass.answer('lock password');
      expectRun(await add(['-x'], env), 0, '', 'Agent locked.\n');
      assert.deepEqual(askpass.calls(), [
        { prompt: '<unset>', argc: 1, argv: 'Enter lock password: ' },
        { prompt: '<unset>', argc: 1, argv: 'Again: ' },
      ]);

      // Locked: no identities, no signatures, no changes, no second lock.
      expectRun(await add(['-l']), 1, NO_IDENTITIES, '');
      expectRun(await add(['-L']), 1, NO_IDENTITIES, '');
      expectRun(
        await add(['-T', pubName(k1)]),
        1,
        '',
        `Agent signature failed for ${pubName(k1)}: agent refused operation\n`,
      );
      expectRun(
        await add([name(keys[2])]),
        1,
        '',
        `Could not add identity "${name(keys[2])}": agent refused operation\n`,
      );
      expectRun(
        await add(['-d', name(k1)]),
        1,
        '',
        `Could not remove identity "${name(k1)}": agent refused operation\n`,
      );
      expectRun(await add(['-D']), 1, '', 'Failed to remove all identities.\n');
      expectRun(await add(['-x'], env), 1, '', 'Failed to lock agent: agent refused operation\n');

      // A wrong password does not unlock.
      askpass.answer('wrong password');
      expectRun(await add(['-X'], env), 1, '', 'Failed to unlock agent: agent refused operation\n');
      expectRun(await add(['-l']), 1, NO_IDENTITIES, '');

      // The right one does (DISPLAY set this time instead of SSH_ASKPASS_REQUIRE).
      askpass.reset();
      askpass.answer('lock password');
      expectRun(
        await add(['-X'], { SSH_ASKPASS: askpass.program, DISPLAY: ':0' }),
        0,
        '',
        'Agent unlocked.\n',
      );
      assert.deepEqual(askpass.calls(), [
        { prompt: '<unset>', argc: 1, argv: 'Enter lock password: ' },
      ]);
      expectRun(await add(['-l']), 0, listed, '');
      expectRun(await add(['-T', pubName(k1)]), 0, '', '');
      expectRun(await add(['-T', pubName(k2)]), 0, '', '');
      expectRun(await add(['-X'], env), 1, '', 'Failed to unlock agent: agent refused operation\n');
      expectRun(await add(['-D']), 0, '', 'All identities removed.\n');
    });
  });

  describe(`ssh-add -c against ${agent.name} (confirm through SSH_ASKPASS)`, { skip }, () => {
    confirmTests(agent, 'sha256');
    confirmTests(agent, 'md5');
    askpassGateTests(agent);
  });

  describe(`agent -t (default lifetime) against ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    before(async () => {
      a = await startAgent(agent, { args: ['-t', '1'] });
    });
    after(() => a?.stop());

    it('a key added without -t expires with the agent default', async () => {
      const k = keys[0];
      expectRun(await sshAdd(a.sock, [name(k)]), 0, '', added(k));
      await waitFor('the key to expire with the agent -t 1 default', async () => {
        const r = await sshAdd(a.sock, ['-l']);
        return r.code === 1 && r.stdout === NO_IDENTITIES;
      });
      expectRun(
        await sshAdd(a.sock, ['-T', pubName(k)]),
        1,
        '',
        `Agent signature failed for ${pubName(k)}: agent refused operation\n`,
      );
    });
  });
}

/** -c keys: every signature asks the agent's SSH_ASKPASS (SSH_ASKPASS_PROMPT=confirm). */
function confirmTests(agent: AgentSpec, hash: 'sha256' | 'md5'): void {
  describe(`agent -E ${hash}`, () => {
    let a: RunningAgent;
    let ask: Askpass;
    let adir: string;
    before(async () => {
      adir = mkTemp();
      ask = new Askpass(adir);
      // OpenSSH's agent runs askpass for confirmation only with DISPLAY (or
      // SSH_ASKPASS_REQUIRE=force) in its environment.
      a = await startAgent(agent, {
        args: ['-E', hash],
        env: { SSH_ASKPASS: ask.program, DISPLAY: ':0' },
      });
    });
    after(async () => {
      await a?.stop();
      rmTemp(adir);
    });

    for (const i of hash === 'sha256' ? KEY_TYPES.keys() : [0]) {
      const t = KEY_TYPES[i];
      it(`${t.name}: yes allows, no/exit 1 refuses; the prompt names the key`, async () => {
        const k = keys[i];
        expectRun(
          await sshAdd(a.sock, ['-c', name(k)]),
          0,
          '',
          `${added(k)}The user must confirm each use of the key\n`,
        );
        expectRun(await sshAdd(a.sock, ['-l']), 0, `${k.listLine}\n`, '');
        const fp =
          hash === 'sha256'
            ? k.fingerprint
            : (await run(SSH_KEYGEN, ['-l', '-E', 'md5', '-f', k.pub])).stdout.split(' ')[1];
        const refused = `Agent signature failed for ${pubName(k)}: agent refused operation\n`;

        const cases: [string, number, boolean][] = [
          ['yes', 0, true],
          ['', 0, true], // an empty answer is a yes
          ['YES', 0, true],
          ['no', 0, false],
          ['yes', 1, false], // askpass failed
        ];
        for (const [answer, status, allowed] of cases) {
          ask.reset();
          ask.answer(answer, status);
          const r = await sshAdd(a.sock, ['-T', pubName(k)]);
          if (allowed) expectRun(r, 0, '', '');
          else expectRun(r, 1, '', refused);
          const calls = ask.calls();
          assert.equal(calls.length, 1, `askpass called once for ${JSON.stringify(answer)}`);
          assert.equal(calls[0].prompt, 'confirm');
          assert.equal(calls[0].argc, 1);
          const expected = `Allow use of key ${k.comment}?\nKey fingerprint ${fp}.`;
          if (agent.kind === 'openssh') {
            assert.equal(calls[0].argv, expected);
          } else {
            // tsagent deliberately says more than OpenSSH: what is signed and who asked.
            assert.match(
              calls[0].argv,
              new RegExp(
                `^${escapeRe(expected)}\\nTo sign \\d+ bytes of unrecognised data\\.\\nRequested by pid \\d+ \\(self-reported command: .*\\), uid ${process.getuid!()}\\.$`,
              ),
            );
            assert.match(calls[0].argv, /\(.*ssh-add.*\)/);
          }
        }
        expectRun(await sshAdd(a.sock, ['-D']), 0, '', 'All identities removed.\n');
      });
    }
  });
}

/**
 * When may the agent run askpass at all? As OpenSSH: only with a display or
 * SSH_ASKPASS_REQUIRE=force, never with =never; otherwise the use is refused unasked.
 */
function askpassGateTests(agent: AgentSpec): void {
  const cases: [string, Record<string, string | undefined>, boolean][] = [
    ['no DISPLAY, no SSH_ASKPASS_REQUIRE', {}, false],
    [
      'SSH_ASKPASS_REQUIRE=never with DISPLAY',
      { DISPLAY: ':0', SSH_ASKPASS_REQUIRE: 'never' },
      false,
    ],
    ['SSH_ASKPASS_REQUIRE=force, no DISPLAY', { SSH_ASKPASS_REQUIRE: 'force' }, true],
  ];
  for (const [label, env, asks] of cases) {
    it(`askpass ${asks ? 'runs' : 'never runs'} with ${label}`, async () => {
      const adir = mkTemp();
      const ask = new Askpass(adir);
      ask.answer('yes');
      const a = await startAgent(agent, { env: { SSH_ASKPASS: ask.program, ...env } });
      try {
        const k = keys[0];
        expectRun(
          await sshAdd(a.sock, ['-c', name(k)]),
          0,
          '',
          `${added(k)}The user must confirm each use of the key\n`,
        );
        const r = await sshAdd(a.sock, ['-T', pubName(k)]);
        if (asks) expectRun(r, 0, '', '');
        else
          expectRun(
            r,
            1,
            '',
            `Agent signature failed for ${pubName(k)}: agent refused operation\n`,
          );
        assert.equal(ask.calls().length, asks ? 1 : 0);
      } finally {
        await a.stop();
        rmTemp(adir);
      }
    });
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
