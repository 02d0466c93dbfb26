// Acceptance: destination constraints kept per key in the vault (`tsagent
// vault set NAME --allow HOP`, --clear-allow, --confirm-forwarded, --local-only), resolved by
// the agent through the known_hosts of its HOME and enforced like `ssh-add -h`,
// across two real OpenSSH hops: the test is "sparrow", two sshd's on loopback
// are "goober" and "boomer". One agent (with a vault) and one pair of sshd's
// serve every case; each case sets the key's defaults it needs with `vault
// set` while the agent runs, and waits (bounded) until `tsagent status` shows
// the agent re-read them.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Hops, Spawned, startHops } from './fixtures/hops';
import { Askpass, TestKey, keyBlobText, keyType, makeKey } from './fixtures/keys';
import { RunResult, SSH, SSHD, SSH_ADD, SSH_KEYGEN, skipUnless } from './fixtures/run';
import {
  NO_IDENTITIES,
  VAULT_PASS,
  VaultAgent,
  VaultWorld,
  listLines,
  poll,
} from './fixtures/vault-agent';

const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]);
const HOST = os.hostname();

interface Audit {
  key: string;
  hops: string[];
  forwarded: boolean;
  user?: string;
  decision: 'allowed' | 'refused';
  reason?: string;
  requester: { pid?: number };
}

describe('vault destination constraints across sparrow → goober → boomer', { skip }, () => {
  let world: VaultWorld;
  let hops: Hops;
  let key: TestKey;
  let agent: VaultAgent;
  /** The agent's SSH_ASKPASS, for confirmations (the vault passphrase uses world.askpass). */
  let confirm: Askpass;
  let auditFile: string;
  let seen = 0;

  before(async () => {
    world = new VaultWorld({ explicitVault: true });
    key = await makeKey(world.work, keyType('ed25519'), {
      name: 'vault-fwd-key',
      comment: 'vault-fwd-key@tsagent-test',
    });
    hops = await startHops(`${keyBlobText(key)} ${key.comment}\n`);
    // The HOME of the agent and of `tsagent vault`: its known_hosts names
    // goober and boomer exactly as hops.ts writes the agent home's.
    fs.mkdirSync(path.join(world.home, '.ssh'), { mode: 0o700 });
    fs.copyFileSync(
      path.join(hops.home, '.ssh', 'known_hosts'),
      path.join(world.home, '.ssh', 'known_hosts'),
    );
    confirm = new Askpass(fs.mkdtempSync(path.join(world.work, 'confirm-')));
    auditFile = path.join(world.work, 'audit.log');

    await world.init();
    const imp = await world.vault(['import', key.priv]);
    assert.ok(
      imp.stderr.includes(`Identity added: ${key.comment} (${key.fingerprint})`),
      imp.stderr,
    );
    // Constrained before the agent ever sees the key.
    const set = await world.vault([
      'set',
      key.comment,
      '--allow',
      'goober',
      '--allow',
      'goober>boomer',
    ]);
    assert.doesNotMatch(set.stderr, /warning/, set.stderr);
    assert.match(set.stderr, /\[allow goober,goober>boomer\]/);

    agent = await world.startAgent({
      args: ['--audit-log', auditFile],
      env: confirm.env(),
    });
    const x = await world.sshAdd(agent, ['-X'], VAULT_PASS);
    assert.equal(x.code, 0, x.stderr);
    assert.match(x.stderr, /Agent unlocked/);
  });

  after(async () => {
    await agent?.stop();
    await hops?.stop();
    await world?.cleanup();
  });

  const ssh = (args: string[]): Spawned => hops.ssh(agent.sock, args);
  /** ssh -A goober ssh boomer CMD… */
  const chain = (cmd: string[]): Spawned =>
    ssh(['-A', 'goober', 'ssh', '-F', hops.config, 'boomer', ...cmd]);

  /** Audit records written since the last call, summarised. */
  function newAudit() {
    let text = '';
    try {
      text = fs.readFileSync(auditFile, 'utf8');
    } catch {
      // No record yet.
    }
    const all = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Audit);
    const fresh = all.slice(seen);
    seen = all.length;
    return fresh.map((r) => {
      assert.equal(r.key, key.fingerprint);
      const s: Record<string, unknown> = {
        decision: r.decision,
        hops: r.hops,
        forwarded: r.forwarded,
      };
      if (r.reason !== undefined) s.reason = r.reason;
      return s;
    });
  }
  const login = (host: string) => ({
    decision: 'allowed',
    hops: [HOST, host],
    forwarded: false,
  });
  const fwd = { decision: 'allowed', hops: [HOST, 'goober', 'boomer'], forwarded: true };

  /** The key as `tsagent status --json` shows it. */
  async function statusKey() {
    const s = await world.status(agent);
    assert.equal(s.code, 0);
    assert.equal(s.locked, false, 'the agent stays unlocked');
    const k = s.keys.find((x) => x.fingerprint === key.fingerprint);
    assert.ok(k, `key not in the agent: ${JSON.stringify(s.keys)}`);
    return k;
  }

  /**
   * `tsagent vault set KEY ARGS` while the agent runs, then wait (bounded) until
   * the agent serves the key with these destinations (and confirm-forwarded flag).
   */
  async function setDefaults(args: string[], destinations: string[], confirmForwarded = false) {
    const r = await world.vault(['set', key.comment, ...args]);
    await poll(
      `destinations ${JSON.stringify(destinations)}`,
      () => world.status(agent),
      (s) =>
        s.keys.some(
          (k) =>
            k.fingerprint === key.fingerprint &&
            JSON.stringify(k.destinations) === JSON.stringify(destinations) &&
            k.confirmForwarded === confirmForwarded,
        ),
      15_000,
    );
    return r;
  }

  /**
   * Make the key's constraints exactly `specs`: --allow adds to those stored, so
   * --clear-allow first (two commands: --clear-allow ignores an --allow beside it).
   * Resolves with the output of the --allow command.
   */
  async function allowOnly(specs: string[], confirmForwarded = false) {
    await world.vault(['set', key.comment, '--clear-allow']);
    return setDefaults(
      specs.flatMap((s) => ['--allow', s]),
      specs,
      confirmForwarded,
    );
  }

  /** Wait for every child (started side by side). */
  const results = (...ps: Spawned[]) => Promise.all(ps.map((p) => p.done));

  function isRefused(r: RunResult) {
    assert.equal(r.code, 255, r.stderr);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  }

  /** Records in a fixed order, for runs whose logins went side by side. */
  const sorted = (list: object[]) => list.map((x) => JSON.stringify(x)).sort();

  it("--allow goober --allow 'goober>boomer' (set before unlocking): the listed chain works, boomer directly is refused", async () => {
    const k = await statusKey();
    assert.equal(k.source, 'vault');
    assert.deepEqual(k.destinations, ['goober', 'goober>boomer']);
    assert.equal(k.confirmForwarded, false);
    newAudit();

    // Independent logins run side by side (the audit is compared as a multiset).
    const [g, c, onGoober, direct] = await results(
      ssh(['goober', 'echo', 'on-goober']),
      chain(['echo', 'on-boomer']),
      // On goober the key is listed: it may go on to boomer.
      ssh(['-A', 'goober', 'ssh-add', '-l']),
      // Straight to boomer is not listed: the key is hidden on that connection,
      // so ssh never offers it and nothing is signed (as with ssh-add -h).
      ssh(['boomer', 'true']),
    );
    assert.equal(g.code, 0, g.stderr);
    assert.equal(g.stdout, 'on-goober\n');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'on-boomer\n');
    assert.ok(hops.boomer.log().includes(`ED25519 ${key.fingerprint}`), hops.boomer.log());
    assert.equal(onGoober.code, 0, onGoober.stderr);
    assert.equal(onGoober.stdout, `${key.listLine}\n`);
    isRefused(direct);
    assert.deepEqual(
      sorted(newAudit()),
      sorted([login('goober'), login('goober'), fwd, login('goober')]),
    );
  });

  it("'goober>nobody@boomer': the key is offered towards boomer, but signing for another user is refused with a destination reason", async () => {
    await allowOnly(['goober', 'goober>nobody@boomer']);
    newAudit();
    const [r] = await results(chain(['true']));
    isRefused(r);
    assert.match(r.stderr, /agent refused operation/);
    assert.deepEqual(newAudit(), [
      login('goober'),
      {
        decision: 'refused',
        hops: [HOST, 'goober', 'boomer'],
        forwarded: true,
        reason: 'destination: not permitted for this destination',
      },
    ]);
  });

  it('--allow goober alone: goober works, goober → boomer is refused, and the key is hidden on goober', async () => {
    await allowOnly(['goober']);
    newAudit();
    const [hidden, onward, direct] = await results(
      ssh(['-A', 'goober', 'echo', 'on-goober;', 'ssh-add', '-l']),
      chain(['true']),
      ssh(['boomer', 'true']),
    );
    assert.equal(hidden.code, 1, hidden.stderr);
    assert.equal(hidden.stdout, `on-goober\n${NO_IDENTITIES}`);
    isRefused(onward);
    isRefused(direct);
    // Only the two logins to goober were signed: nothing was offered beyond it.
    assert.deepEqual(newAudit(), [login('goober'), login('goober')]);
  });

  it('constraints follow the vault while the agent runs: --clear-allow frees the key, --allow constrains it again', async () => {
    await allowOnly(['goober']);
    const cleared = await setDefaults(['--clear-allow'], []);
    assert.doesNotMatch(cleared.stderr, /\[allow/);
    newAudit();
    const [direct] = await results(ssh(['boomer', 'echo', 'on-boomer']));
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.stdout, 'on-boomer\n');
    assert.deepEqual(newAudit(), [login('boomer')]);

    await setDefaults(['--allow', 'goober'], ['goober']);
    const [again, onward] = await results(ssh(['boomer', 'true']), chain(['true']));
    isRefused(again);
    isRefused(onward);
    assert.deepEqual(newAudit(), [login('goober')]);

    // --allow adds a hop to those stored: now goober → boomer works too.
    await setDefaults(['--allow', 'goober>boomer'], ['goober', 'goober>boomer']);
    const [c] = await results(chain(['true']));
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(newAudit(), [login('goober'), fwd]);
    // No second unlock was needed for any of it.
    assert.equal((await statusKey()).source, 'vault');
  });

  it('a host not in known_hosts: a warning, and the key is usable nowhere (never silently unconstrained)', async () => {
    const r = await allowOnly(['nosuchhost']);
    assert.match(
      r.stderr,
      /warning: nosuchhost is not in your known_hosts: the key cannot be used there until you have connected to it once/,
    );
    assert.doesNotMatch(r.stderr, /goober|boomer/);
    newAudit();
    const [g, b] = await results(ssh(['goober', 'true']), ssh(['boomer', 'true']));
    isRefused(g);
    isRefused(b);
    assert.deepEqual(newAudit(), []);
    // Locally (no session bind) it is listed, as ssh-add -h keys are, but signs no non-login.
    const l = await world.sshAdd(agent, ['-l']);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(listLines(l.stdout), [key.listLine]);
    const sig = await world.sign(agent, key.pub, 'hello\n');
    assert.notEqual(sig.code, 0);
    assert.equal(sig.sig, undefined);
    assert.deepEqual(newAudit(), [
      {
        decision: 'refused',
        hops: [],
        forwarded: false,
        reason: 'destination: destination-constrained key used on an unbound connection',
      },
    ]);

    // Beside a known host, only the unknown one is warned about, and the known one works.
    const both = await allowOnly(['goober', 'nosuchhost']);
    assert.match(both.stderr, /warning: nosuchhost is not in your known_hosts/);
    assert.doesNotMatch(both.stderr, /warning: goober/);
    const [ok] = await results(ssh(['goober', 'true']));
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(newAudit(), [login('goober')]);
  });

  it('--clear-allow beside --allow never leaves the key unconstrained', async () => {
    await allowOnly(['goober']);
    const r = await world.tsagent(
      ['vault', 'set', key.comment, '--clear-allow', '--allow', 'boomer'],
      { lines: [VAULT_PASS] },
    );
    // Either a usage error (the stored constraints stay) or the list replaced.
    if (r.code === 0) assert.match(r.stderr, /\[allow boomer\]/);
    else assert.equal(r.code, 2, r.stderr);
  });

  it('--confirm-forwarded: local use does not ask; the forwarded hop asks once; no refuses it', async () => {
    await setDefaults(['--clear-allow', '--confirm-forwarded'], [], true);
    const k = await statusKey();
    assert.equal(k.confirm, false);
    confirm.reset();
    confirm.answer('yes');
    newAudit();

    const [g, gA] = await results(ssh(['goober', 'true']), ssh(['-A', 'goober', 'true']));
    assert.equal(g.code, 0, g.stderr);
    assert.equal(gA.code, 0, gA.stderr);
    assert.deepEqual(confirm.calls(), []);
    assert.deepEqual(newAudit(), [login('goober'), login('goober')]);

    const p = chain(['echo', 'on-boomer']);
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'on-boomer\n');
    const calls = confirm.calls();
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].prompt, 'confirm');
    assert.ok(
      calls[0].argv.startsWith(
        `Allow use of key ${key.comment}?\nKey fingerprint ${key.fingerprint}.\n`,
      ),
      calls[0].argv,
    );
    assert.ok(
      calls[0].argv.endsWith(`\nForwarded: ${HOST} \u2192 goober \u2192 boomer.`),
      calls[0].argv,
    );
    assert.deepEqual(newAudit(), [login('goober'), fwd]);

    confirm.reset();
    confirm.answer('', 1);
    const [no] = await results(chain(['true']));
    isRefused(no);
    assert.match(no.stderr, /agent refused operation/);
    assert.equal(confirm.calls().length, 1);
    assert.deepEqual(newAudit(), [
      login('goober'),
      {
        decision: 'refused',
        hops: [HOST, 'goober', 'boomer'],
        forwarded: true,
        reason: 'refused: user refused',
      },
    ]);
  });

  it('--confirm-forwarded with --allow: constraints and the question both apply; --no-confirm-forwarded stops asking', async () => {
    await allowOnly(['goober', 'goober>boomer'], true);
    confirm.reset();
    confirm.answer('yes');
    newAudit();
    // Boomer directly is refused by the constraints before anyone is asked.
    const [c, direct] = await results(chain(['true']), ssh(['boomer', 'true']));
    assert.equal(c.code, 0, c.stderr);
    isRefused(direct);
    assert.equal(confirm.calls().length, 1);
    assert.deepEqual(newAudit(), [login('goober'), fwd]);

    await setDefaults(['--no-confirm-forwarded'], ['goober', 'goober>boomer'], false);
    confirm.reset();
    const again = await chain(['true']).done;
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(confirm.calls(), []);
    assert.deepEqual(newAudit(), [login('goober'), fwd]);
  });

  it('a host added to known_hosts later becomes usable without a re-unlock, as the warning promises', async () => {
    const khFile = path.join(world.home, '.ssh', 'known_hosts');
    const kh = fs.readFileSync(khFile, 'utf8');
    try {
      const r = await allowOnly(['gooberalias']);
      assert.match(r.stderr, /warning: gooberalias is not in your known_hosts/);
      isRefused((await results(ssh(['goober', 'true'])))[0]);
      // "Connecting once": known_hosts now names goober's host key gooberalias too.
      fs.appendFileSync(khFile, `gooberalias ${hops.goober.hostKey}\n`);
      const ok = await poll(
        'a login to goober',
        async () => (await ssh(['goober', 'true']).done).code,
        (code) => code === 0,
        5_000,
      );
      assert.equal(ok, 0);
    } finally {
      fs.writeFileSync(khFile, kh);
    }
  });

  it('--local-only: logins from here work, on goober the key is neither listed nor used; --no-local-only serves it there again', async () => {
    await setDefaults(['--clear-allow'], []);
    const localOnly = async (on: boolean) => {
      const r = await world.vault(['set', key.comment, on ? '--local-only' : '--no-local-only']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(/\[local-only\]/.test(r.stderr), on, r.stderr);
      await poll(
        `local-only ${on}`,
        () => world.status(agent),
        (st) => st.keys.some((k) => k.fingerprint === key.fingerprint && k.localOnly === on),
        15_000,
      );
    };
    await localOnly(true);
    newAudit();
    const [direct, hidden, onward] = await results(
      ssh(['goober', 'echo', 'direct']),
      ssh(['-A', 'goober', 'echo', 'on-goober;', 'ssh-add', '-l']),
      chain(['true']),
    );
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(hidden.code, 1, hidden.stderr);
    assert.equal(hidden.stdout, `on-goober\n${NO_IDENTITIES}`);
    isRefused(onward);
    // Three logins to goober signed here; nothing was signed through goober.
    assert.deepEqual(newAudit(), [login('goober'), login('goober'), login('goober')]);

    await localOnly(false);
    const [listed, c] = await results(ssh(['-A', 'goober', 'ssh-add', '-l']), chain(['true']));
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, `${key.listLine}\n`);
    assert.equal(c.code, 0, c.stderr);
  });
});
