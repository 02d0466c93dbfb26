// Acceptance (vault issue): every key type and input format goes into the vault,
// the original key file is deleted, the agent is started on the vault, opened
// with OpenSSH's `ssh-add -X`, and then signs (`ssh-keygen -Y sign`, checked by
// `ssh-keygen -Y verify`) and logs in to a real sshd with the key that now
// exists only in the vault and the agent. Then no file the vault, the CLI or the
// agent wrote (vault, vault.bak, temp files, audit log, debug log) may hold any
// of those keys' secret parts, in raw, hex or base64 form.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseKeyFile } from '../src/vault/keyfile';
import { SSH, SSHD, SSH_ADD, SSH_KEYGEN, run, skipUnless } from './fixtures/run';
import { SSH_NO_CONFIG, Sshd, startSshd } from './fixtures/sshd';
import { OPENSSL, makePpkV2, secretParts } from './fixtures/vault';
import {
  NO_IDENTITIES,
  VAULT_PASS,
  VaultAgent,
  VaultWorld,
  listLines,
  scanTree,
  secretNeedles,
  verifySignature,
} from './fixtures/vault-agent';

const OPENSSL_BIN = OPENSSL.find((p) => fs.existsSync(p)) ?? OPENSSL[0];
const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN, OPENSSL_BIN]);
const KEY_PASS = 'key file passphrase';

interface Case {
  name: string;
  /** The private key file given to `vault import` (deleted afterwards). */
  file: string;
  encrypted: boolean;
  /** The public key line, from ssh-keygen/openssl (not from tsagent's parser). */
  publicLine: string;
  /** "256 SHA256:… " as ssh-keygen -l prints it, for ssh-add -l. */
  bits: string;
  fingerprint: string;
  /** The comment the agent must show: the OpenSSH/PuTTY comment, else the file name. */
  comment: string;
  /** The .pub file, for ssh-keygen -Y sign and ssh -i. */
  pub: string;
  secrets: Buffer[];
}

/** A fingerprint (or any text) as a literal inside a RegExp. */
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Run `fn` over `items`, four at a time. */
async function inParallel<T>(items: T[], fn: (item: T) => Promise<void>, width = 4) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

describe(
  'vault round trip: import, delete the file, agent, ssh-add -X, sign and log in',
  { skip },
  () => {
    let world: VaultWorld;
    let keysDir: string;
    let sshd: Sshd;
    let agent: VaultAgent;
    const cases: Case[] = [];

    /** The agents' debug logs are scanned with everything else under the world's root. */
    const keepLog = (a: VaultAgent) => {
      const logs = path.join(world.root, 'agent-logs');
      fs.mkdirSync(logs, { recursive: true });
      fs.writeFileSync(path.join(logs, `agent-${a.pid}.log`), a.log() + a.stdout());
    };

    const ok = async (cmd: string, args: string[]) => {
      const r = await run(cmd, args, { env: world.env() });
      assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    /** Record a case once its key file and .pub exist. */
    const add = async (name: string, file: string, encrypted: boolean, comment: string) => {
      const pub = path.join(keysDir, `${name}.pub`);
      const publicLine = fs.readFileSync(pub, 'utf8').trim();
      const [bits, fingerprint] = (await ok(SSH_KEYGEN, ['-l', '-E', 'sha256', '-f', pub])).split(
        ' ',
      );
      const km = parseKeyFile(fs.readFileSync(file), {
        defaultComment: file,
        passphrase: encrypted ? Buffer.from(KEY_PASS) : undefined,
      });
      // The parsed key is the one the tools describe (so its secrets are the right ones).
      assert.equal(km.publicBlob.toString('base64'), publicLine.split(' ')[1], name);
      cases.push({
        name,
        file,
        encrypted,
        publicLine,
        bits,
        fingerprint,
        comment,
        pub,
        secrets: secretParts(km),
      });
    };

    /** ssh-keygen: OpenSSH (default), PEM (PKCS#1/SEC1) or PKCS8. */
    const keygen = async (name: string, args: string[], format?: 'PEM' | 'PKCS8', pass = '') => {
      const file = path.join(keysDir, name);
      const comment = `${name}@vault-test`;
      await ok(SSH_KEYGEN, [
        '-q',
        ...args,
        ...(format ? ['-m', format] : []),
        '-N',
        pass,
        '-C',
        comment,
        '-f',
        file,
      ]);
      // Only the OpenSSH container keeps the comment; other formats get the file name (as ssh-add).
      await add(name, file, pass !== '', format ? file : comment);
    };

    /** A PKCS#12 file (openssl pkcs12 -export) of a fresh openssl key; the source is removed. */
    const p12 = async (name: string, genpkey: string[]) => {
      const src = path.join(keysDir, `${name}.src.pem`);
      await ok(OPENSSL_BIN, ['genpkey', ...genpkey, '-out', src]);
      fs.writeFileSync(
        path.join(keysDir, `${name}.pub`),
        (await ok(SSH_KEYGEN, ['-y', '-f', src])).trim() + '\n',
      );
      const file = path.join(keysDir, `${name}.p12`);
      await ok(OPENSSL_BIN, [
        'pkcs12',
        '-export',
        '-nocerts',
        '-inkey',
        src,
        '-passout',
        `pass:${KEY_PASS}`,
        '-out',
        file,
      ]);
      fs.rmSync(src);
      await add(name, file, true, file);
    };

    /** Ed25519 as PKCS#8 from openssl (ssh-keygen writes Ed25519 only in its own format). */
    const opensslEd25519 = async (name: string, encrypted: boolean) => {
      const file = path.join(keysDir, `${name}.pem`);
      await ok(OPENSSL_BIN, [
        'genpkey',
        '-algorithm',
        'ed25519',
        ...(encrypted ? ['-aes-256-cbc', '-pass', `pass:${KEY_PASS}`] : []),
        '-out',
        file,
      ]);
      const der = await new Promise<Buffer>((resolve, reject) => {
        const args = ['pkey', '-in', file, '-pubout', '-outform', 'DER'];
        if (encrypted) args.push('-passin', `pass:${KEY_PASS}`);
        // Binary output: read it through a file rather than the text runner.
        const out = path.join(keysDir, `${name}.der`);
        run(OPENSSL_BIN, [...args, '-out', out], { env: world.env() }).then((r) => {
          if (r.code !== 0) return reject(new Error(r.stderr));
          const b = fs.readFileSync(out);
          fs.rmSync(out);
          resolve(b);
        }, reject);
      });
      const blob = Buffer.concat([
        sshString('ssh-ed25519'),
        sshString(der.subarray(der.length - 32)),
      ]);
      fs.writeFileSync(
        path.join(keysDir, `${name}.pub`),
        `ssh-ed25519 ${blob.toString('base64')} ${name}\n`,
      );
      await add(name, file, encrypted, file);
    };

    /** PuTTY .ppk v2 (RSA), built by the fixture (puttygen is not needed). */
    const ppk = async (name: string) => {
      const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const src = path.join(keysDir, `${name}.src.pem`);
      fs.writeFileSync(src, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      fs.writeFileSync(
        path.join(keysDir, `${name}.pub`),
        (await ok(SSH_KEYGEN, ['-y', '-f', src])).trim() + '\n',
      );
      fs.rmSync(src);
      const file = path.join(keysDir, `${name}.ppk`);
      fs.writeFileSync(file, makePpkV2(key, `${name}@putty`, KEY_PASS), { mode: 0o600 });
      await add(name, file, true, `${name}@putty`);
    };

    before(async () => {
      world = new VaultWorld(); // the default vault path: $XDG_DATA_HOME/tsagent/vault
      keysDir = path.join(world.work, 'keys');
      fs.mkdirSync(keysDir);
      await Promise.all([
        keygen('openssh-ed25519', ['-t', 'ed25519']),
        keygen('openssh-ecdsa256', ['-t', 'ecdsa', '-b', '256']),
        keygen('openssh-ecdsa384', ['-t', 'ecdsa', '-b', '384']),
        keygen('openssh-ecdsa521', ['-t', 'ecdsa', '-b', '521']),
        keygen('openssh-rsa2048', ['-t', 'rsa', '-b', '2048']),
        keygen('openssh-enc-ed25519', ['-t', 'ed25519'], undefined, KEY_PASS),
        keygen('openssh-enc-ecdsa384', ['-t', 'ecdsa', '-b', '384'], undefined, KEY_PASS),
        keygen('pem-pkcs1-rsa', ['-t', 'rsa', '-b', '2048'], 'PEM'),
        keygen('pem-pkcs1-enc-rsa', ['-t', 'rsa', '-b', '2048'], 'PEM', KEY_PASS),
        keygen('pem-sec1-ecdsa256', ['-t', 'ecdsa', '-b', '256'], 'PEM'),
        keygen('pem-sec1-enc-ecdsa521', ['-t', 'ecdsa', '-b', '521'], 'PEM', KEY_PASS),
        keygen('pkcs8-ecdsa521', ['-t', 'ecdsa', '-b', '521'], 'PKCS8'),
        keygen('pkcs8-enc-rsa', ['-t', 'rsa', '-b', '2048'], 'PKCS8', KEY_PASS),
        opensslEd25519('pkcs8-ed25519', false),
        opensslEd25519('pkcs8-enc-ed25519', true),
        p12('p12-rsa', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']),
        p12('p12-ecdsa384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']),
        ppk('ppk-enc-rsa'),
      ]);
      cases.sort((a, b) => a.name.localeCompare(b.name));

      await world.init();
      // One import of every file: the vault passphrase, then each encrypted file's, in order.
      const r = await world.vault(
        ['import', ...cases.map((c) => c.file)],
        cases.filter((c) => c.encrypted).map(() => KEY_PASS),
      );
      for (const c of cases)
        assert.match(r.stderr, new RegExp(`Identity added: .*${re(c.fingerprint)}`));
      // From here on the private keys exist only in the vault.
      for (const c of cases) fs.rmSync(c.file);

      sshd = await startSshd({
        authorizedKeys: cases.map((c) => `${c.publicLine}\n`).join(''),
        config: ['Subsystem sftp internal-sftp'],
      });
      agent = await world.startAgent();
    });

    after(async () => {
      await agent?.stop();
      await sshd?.stop();
      await world?.cleanup();
    });

    it('the vault is where XDG_DATA_HOME says, and the original key files are gone', () => {
      assert.ok(fs.existsSync(path.join(world.dataHome, 'tsagent', 'vault')));
      for (const c of cases) assert.equal(fs.existsSync(c.file), false, c.file);
    });

    it('the agent starts locked: ssh-add -l lists nothing until ssh-add -X', async () => {
      let r = await world.sshAdd(agent, ['-l']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, NO_IDENTITIES);

      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, 'Agent unlocked.\n');

      r = await world.sshAdd(agent, ['-l']);
      assert.equal(r.code, 0, r.stderr);
      const lines = listLines(r.stdout);
      assert.equal(lines.length, cases.length, r.stdout);
      for (const c of cases) {
        const line = lines.find((l) => l.split(' ')[1] === c.fingerprint);
        assert.ok(line, `${c.name} (${c.fingerprint}) not listed:\n${r.stdout}`);
        assert.ok(line.startsWith(`${c.bits} ${c.fingerprint} ${c.comment} (`), line);
      }
      // ssh-add -L gives back exactly the public keys the tools made.
      r = await world.sshAdd(agent, ['-L']);
      const blobs = listLines(r.stdout).map((l) => l.split(' ').slice(0, 2).join(' '));
      for (const c of cases)
        assert.ok(blobs.includes(c.publicLine.split(' ').slice(0, 2).join(' ')));
    });

    it('ssh-keygen -Y sign with each vault key verifies with ssh-keygen -Y verify', async () => {
      await inParallel(cases, async (c) => {
        const text = `signed with ${c.name} from the vault\n`;
        const s = await world.sign(agent, c.pub, text);
        assert.equal(s.code, 0, `${c.name}: ${s.stderr}`);
        assert.ok(s.sig, c.name);
        const v = await verifySignature(world, c.publicLine, text, s.sig);
        assert.equal(v.code, 0, `${c.name}: ${v.stderr}`);
        assert.match(
          v.stdout,
          new RegExp(`^Good "file" signature for .* key ${re(c.fingerprint)}\n$`),
        );
        const bad = await verifySignature(world, c.publicLine, 'another text\n', s.sig);
        assert.notEqual(bad.code, 0, `${c.name}: a changed message must not verify`);
      });
    });

    /**
     * `ssh` offering only this key (from the agent, matched by its .pub file). Without a
     * command it opens sshd's internal sftp subsystem and closes it at once: a full
     * login without starting the account's shell (whose rc files can take seconds).
     */
    const login = (c: Case, command?: string) =>
      run(
        SSH,
        [
          ...SSH_NO_CONFIG,
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          `IdentityFile=${c.pub}`,
          '-o',
          'ConnectTimeout=20',
          '-p',
          String(sshd.port),
          ...(command
            ? [`${sshd.user}@127.0.0.1`, command]
            : ['-s', `${sshd.user}@127.0.0.1`, 'sftp']),
        ],
        { env: world.env({ SSH_AUTH_SOCK: agent.sock }), input: '' },
      );

    const accepted = (c: Case) =>
      new RegExp(`Accepted publickey for \\S+ from 127\\.0\\.0\\.1 .* ${re(c.fingerprint)}`);

    it('ssh logs in to a test sshd and runs a command with a key only in the vault and the agent', async () => {
      const c = cases.find((k) => k.name === 'openssh-ed25519')!;
      const r = await login(c, 'echo logged-in');
      assert.equal(r.code, 0, `${r.stderr}\nsshd: ${sshd.log().slice(-2000)}`);
      assert.equal(r.stdout, 'logged-in\n');
      assert.match(sshd.log(), accepted(c));
    });

    it('ssh logs in with every vault key, every type and input format', async () => {
      await inParallel(cases, async (c) => {
        const r = await login(c);
        assert.equal(r.code, 0, `${c.name}: ${r.stderr}\nsshd: ${sshd.log().slice(-2000)}`);
        assert.match(sshd.log(), accepted(c), c.name);
      });
    });

    it('after an agent restart the vault opens again with ssh-add -X, every key signs', async () => {
      await agent.stop();
      keepLog(agent);
      agent = await world.startAgent();
      let r = await world.sshAdd(agent, ['-l']);
      assert.equal(r.stdout, NO_IDENTITIES);
      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      r = await world.sshAdd(agent, ['-l']);
      assert.equal(listLines(r.stdout).length, cases.length, r.stdout);
      const c = cases[0];
      const s = await world.sign(agent, c.pub, 'after restart\n');
      assert.equal(s.code, 0, s.stderr);
      const v = await verifySignature(world, c.publicLine, 'after restart\n', s.sig!);
      assert.equal(v.code, 0, v.stderr);
    });

    it('no secret part of any key is in the vault, vault.bak, temp files, audit log or debug log', async () => {
      const needles = cases.flatMap((c) =>
        c.secrets.flatMap((s) => {
          const stripped = s.subarray(s.findIndex((b) => b !== 0));
          return [...secretNeedles(s), ...secretNeedles(stripped)];
        }),
      );
      keepLog(agent);
      assert.equal(fs.readdirSync(path.join(world.root, 'agent-logs')).length, 2);

      // What is scanned is really there, and the scanner is not blind.
      const vaultDir = path.join(world.dataHome, 'tsagent');
      for (const f of ['vault', 'vault.bak', 'audit.log'])
        assert.ok(fs.statSync(path.join(vaultDir, f)).size > 0, f);
      assert.ok(fs.readFileSync(path.join(vaultDir, 'audit.log'), 'utf8').includes('"allowed"'));
      const temps = fs.readdirSync(world.captureDir);
      assert.ok(
        temps.some((t) => t.includes('.vault.tmp-')),
        `no temp file captured: ${temps}`,
      );
      assert.match(agent.log(), /listening on/);
      const probe = path.join(world.root, 'probe');
      fs.writeFileSync(probe, `x${cases[0].secrets[0].toString('hex')}y`);
      assert.deepEqual(scanTree(world.root, needles), [probe]);
      fs.rmSync(probe);

      // Everything under the test's HOME, XDG dirs, captured temp files, logs.
      assert.deepEqual(scanTree(world.root, needles), []);
    });
  },
);
