// Issue 12: security-key files (ed25519-sk, ecdsa-sk; plain and passphrase
// protected) made with OpenSSH's software authenticator sk-dummy go into the
// vault with their provider; an agent on the vault, opened with ssh-add -X,
// lists them and signs with them through ssh-sk-helper (ssh-keygen -Y sign,
// checked by ssh-keygen -Y verify). The vault holds no key handle in clear.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readSkPrivateKey } from '../src/ssh/sk-key';
import { WireReader } from '../src/ssh/wire';
import { parseKeyFile } from '../src/vault/keyfile';
import { SSH_KEYGEN, run } from './fixtures/run';
import { SK_DUMMY, SK_FIXTURES, skipUnlessSk } from './fixtures/sk';
import {
  VAULT_PASS,
  VaultAgent,
  VaultWorld,
  listLines,
  scanTree,
  secretNeedles,
  verifySignature,
} from './fixtures/vault-agent';

const KEY_PASS = 'sk file passphrase';

interface SkCase {
  name: string;
  file: string;
  pub: string;
  publicLine: string;
  fingerprint: string;
  handle: Buffer;
}

describe(
  'vault: security keys (sk-dummy) imported, unlocked, listed and signing',
  { skip: skipUnlessSk() },
  () => {
    let world: VaultWorld;
    let agent: VaultAgent;
    const cases: SkCase[] = [];

    before(async () => {
      world = new VaultWorld();
      await world.init();
      const specs = [
        { name: 'id_ed25519_sk', type: 'ed25519-sk', pass: '' },
        { name: 'id_ed25519_sk_enc', type: 'ed25519-sk', pass: KEY_PASS },
        { name: 'id_ecdsa_sk', type: 'ecdsa-sk', pass: '' },
      ];
      for (const s of specs) {
        const file = path.join(world.work, s.name);
        const args = [
          '-q',
          '-t',
          s.type,
          '-w',
          SK_DUMMY,
          '-N',
          s.pass,
          '-C',
          `${s.name}@sk`,
          '-f',
          file,
        ];
        const r = await run(SSH_KEYGEN, args, { env: world.env() });
        assert.equal(r.code, 0, r.stderr);
        const pub = `${file}.pub`;
        const publicLine = fs.readFileSync(pub, 'utf8').trim();
        const fp = await run(SSH_KEYGEN, ['-l', '-E', 'sha256', '-f', pub], { env: world.env() });
        const km = parseKeyFile(fs.readFileSync(file), {
          defaultComment: file,
          passphrase: s.pass ? Buffer.from(s.pass) : undefined,
        });
        assert.equal(km.keyType, publicLine.split(' ')[0]);
        assert.equal(km.publicBlob.toString('base64'), publicLine.split(' ')[1], s.name);
        const sk = readSkPrivateKey(km.keyType, new WireReader(km.privateFields));
        cases.push({
          name: s.name,
          file,
          pub,
          publicLine,
          fingerprint: fp.stdout.split(' ')[1],
          handle: sk.keyHandle,
        });
      }
    });

    after(async () => {
      await world?.cleanup();
    });

    it('imports them with --sk-provider (asking the encrypted one for its passphrase)', async () => {
      const files = cases.map((c) => c.file);
      const r = await world.vault(['import', '--sk-provider', SK_DUMMY, ...files], [KEY_PASS]);
      for (const c of cases)
        assert.match(r.stderr + r.stdout, new RegExp(c.fingerprint.replace(/[+/]/g, '\\$&')));
    });

    it('vault list shows them', async () => {
      const r = await world.vault(['list']);
      for (const c of cases) {
        const line = listLines(r.stdout).find((l) => l.includes(`${c.name}@sk`));
        assert.ok(line, r.stdout);
        assert.ok(line.startsWith(`256 ${c.fingerprint} `), line);
        assert.match(line, /\((ED25519|ECDSA)-SK\)/);
        assert.ok(line.includes(`[sk-provider ${SK_DUMMY}]`), line);
      }
    });

    it('the vault holds no key handle in clear', () => {
      for (const c of cases) {
        const hits = scanTree(path.dirname(world.vaultPath), secretNeedles(c.handle));
        assert.deepEqual(hits, [], c.name);
      }
    });

    it('an agent on the vault, opened with ssh-add -X, lists them and signs through the helper', async () => {
      agent = await world.startAgent();
      const x = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(x.code, 0, x.stderr);
      const l = await world.sshAdd(agent, ['-l']);
      assert.equal(l.code, 0, l.stderr + agent.log());
      const lines = listLines(l.stdout);
      for (const c of cases)
        assert.ok(
          lines.some((line) => line.includes(c.fingerprint)),
          `${c.name} listed: ${l.stdout}\n${agent.log()}`,
        );
      for (const c of cases) {
        const text = `signed by ${c.name} from the vault\n`;
        const s = await world.sign(agent, c.pub, text);
        assert.equal(s.code, 0, `${c.name}: ${s.stderr}\n${agent.log()}`);
        assert.ok(s.sig);
        const v = await verifySignature(world, c.publicLine, text, s.sig);
        assert.equal(v.code, 0, `${c.name}: ${v.stderr}`);
      }
    });

    it('a provider the -P allow-list refuses keeps the vault sk keys out of the agent', async () => {
      const other = await world.startAgent({ args: ['-P', '/nonexistent/*'] });
      try {
        const x = await world.sshAdd(other, ['-X'], VAULT_PASS);
        assert.equal(x.code, 0, x.stderr);
        const l = await world.sshAdd(other, ['-l']);
        for (const c of cases) assert.ok(!l.stdout.includes(c.fingerprint), l.stdout);
        assert.match(other.log(), /vault key "id_ed25519_sk@sk" not loaded/);
      } finally {
        await other.stop();
      }
    });

    it('the vault and everything the agent wrote hold no key handle', () => {
      for (const c of cases)
        assert.deepEqual(
          scanTree(world.root, secretNeedles(c.handle)).filter((f) => !f.startsWith(world.work)),
          [],
          c.name,
        );
    });
  },
);

describe('vault: sk key files read into the bytes ssh-add sends', () => {
  for (const name of ['id_ed25519_sk', 'id_ecdsa_sk']) {
    it(`${name}: the private fields are those of ssh-add's ADD_IDENTITY`, () => {
      const file = path.join(SK_FIXTURES, name);
      const km = parseKeyFile(fs.readFileSync(file), { defaultComment: file });
      const pubLine = fs.readFileSync(`${file}.pub`, 'utf8').split(' ');
      assert.equal(km.keyType, pubLine[0]);
      assert.equal(km.publicBlob.toString('base64'), pubLine[1]);
      // The recorded request: byte type, string key type, the private fields, string comment, …
      const add = fs.readFileSync(path.join(SK_FIXTURES, `${name}.add.bin`));
      const r = new WireReader(add.subarray(1));
      assert.equal(r.text(), km.keyType);
      const fields = add.subarray(
        add.length - r.remaining,
        add.length - r.remaining + km.privateFields.length,
      );
      assert.ok(fields.equals(km.privateFields));
    });
  }
});
