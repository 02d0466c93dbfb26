// `tsagent status` and the -d log show what an agent is told; the comments come
// from whoever added them and must reach the terminal escaped, for tsagent's
// own status and for another agent's plain identity list alike.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AGENTS,
  TSAGENTS,
  TSAGENT_MAIN,
  startAgent,
  supervise,
  RunningAgent,
} from './fixtures/agent';
import { keyType, makeKey, TestKey } from './fixtures/keys';
import { runVaultCli } from './fixtures/vault';
import { SSH_ADD, baseEnv, mkTemp, rmTemp, run, skipUnless, waitFor } from './fixtures/run';

const HOSTILE = 'evil\x1b]0;owned\x07\rLogin: root \u202egpj.exe';

for (const agent of AGENTS) {
  describe(`tsagent status against ${agent.name}`, { skip: skipUnless([SSH_ADD]) }, () => {
    let dir: string;
    let a: RunningAgent;
    let key: TestKey;
    before(async () => {
      dir = mkTemp();
      a = await startAgent(agent);
      key = await makeKey(dir, keyType('ed25519'), { comment: HOSTILE });
      const r = await run(SSH_ADD, [key.priv], { env: baseEnv({ SSH_AUTH_SOCK: a.sock }) });
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await a?.stop();
      rmTemp(dir);
    });

    it('prints key comments escaped: no ESC, CR or bidi override reaches the terminal', async () => {
      const r = await run(process.execPath, [TSAGENT_MAIN, 'status'], {
        env: baseEnv({ SSH_AUTH_SOCK: a.sock }),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /[\x1b\x07\r\u202e]/u, JSON.stringify(r.stdout));
      assert.ok(
        r.stdout.includes(
          `${key.fingerprint} evil\\x1b]0;owned\\x07\\rLogin: root \\u{202e}gpj.exe`,
        ),
        r.stdout,
      );
    });
  });
}

for (const agent of TSAGENTS) {
  describe(`${agent.name} -d: the debug log`, () => {
    it('escapes every line it writes: a socket path cannot forge a log line or reach the terminal raw', async () => {
      const dir = mkTemp();
      const sock = path.join(dir, 'a\x1b[31mb\ntsagent[1]: FORGED.sock');
      const child = spawn(agent.command, [...agent.prefix, '-d', '-a', sock], {
        env: baseEnv({ HOME: dir, XDG_DATA_HOME: path.join(dir, 'data') }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const sup = supervise(child, dir);
      try {
        await sup.waitReady(sock, agent.name);
        await waitFor('the listening line', () => /listening on/.test(sup.output().stderr));
        const log = sup.output().stderr;
        assert.doesNotMatch(log, /\x1b/, JSON.stringify(log));
        assert.ok(
          log.split('\n').every((l) => l === '' || /^tsagent\[\d+\]: /.test(l)),
          JSON.stringify(log),
        );
        assert.doesNotMatch(log, /^(tsagent\[\d+\]: )?tsagent\[1\]: FORGED/m);
        assert.ok(log.includes('a\\x1b[31mb\\ntsagent[1]: FORGED.sock'), log);
      } finally {
        await sup.stop();
      }
    });
  });
}

describe('tsagent vault list and generate', () => {
  it('print key comments escaped', async () => {
    const dir = mkTemp();
    try {
      const cli = (args: string[], lines: string[]) =>
        runVaultCli(['--vault', path.join(dir, 'v', 'vault'), '--passphrase-fd', '3', ...args], {
          lines,
        });
      let r = await cli(['init', '--kdf-memory', '1024', '--kdf-time', '1'], ['pw']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['generate', '-t', 'ed25519', '-C', HOSTILE.replace('\r', '')], ['pw']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['list'], ['pw']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /[\x1b\x07\u202e]/u, JSON.stringify(r.stdout));
      assert.match(
        r.stdout,
        / evil\\x1b\]0;owned\\x07Login: root \\u\{202e\}gpj\.exe \(ED25519\)\n$/,
      );
    } finally {
      rmTemp(dir);
    }
  });
});
