// `tsagent vault …` end to end, through runVault in a child process (not main.ts):
// passphrases on fd 3, SSH_ASKPASS, exit codes and messages.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { choosePassphraseSource } from '../src/cli/passphrase';
import { parseLifetime } from '../src/cli/vault-commands';
import { fingerprint } from '../src/ssh/fingerprint';
import { VaultFile } from '../src/vault/store';
import {
  filesContainingSecrets,
  REPO_ROOT,
  run,
  runVaultCli,
  secretParts,
  SSH_KEYGEN,
} from './fixtures/vault';

const PASS = 'cli vault pass';
const KEY_PASS = 'key file pass';
const SMALL = ['--kdf-memory', '1024', '--kdf-time', '1'];
const keygen = SSH_KEYGEN.find((p) => fs.existsSync(p));

describe('tsagent vault CLI', () => {
  let dir: string;
  let vaultPath: string;
  let keysDir: string;
  const cli = (args: string[], lines: string[] = [], env?: NodeJS.ProcessEnv) =>
    runVaultCli(['--vault', vaultPath, '--passphrase-fd', '3', ...args], { lines, env });

  // One vault for the whole suite: the tests run in order and build on each other.
  before(() => {
    if (!keygen && process.env.CI) throw new Error('ssh-keygen is required on CI');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-vault-cli-'));
    vaultPath = path.join(dir, 'data', 'tsagent', 'vault');
    keysDir = path.join(dir, 'keys');
    fs.mkdirSync(keysDir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('init asks twice through SSH_ASKPASS and refuses a mismatch, an empty passphrase and an existing vault', async () => {
    // An askpass that answers PASS, then "other": the confirmation does not match.
    const askpass = path.join(dir, 'askpass-mismatch');
    const count = path.join(dir, 'askpass-count');
    fs.writeFileSync(
      askpass,
      `#!/bin/sh\necho x >> '${count}'\nif [ "$(wc -l < '${count}')" -eq 1 ]; then echo '${PASS}'; else echo other; fi\n`,
      { mode: 0o755 },
    );
    let r = await runVaultCli(['--vault', vaultPath, 'init', ...SMALL], {
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        SSH_ASKPASS: askpass,
        SSH_ASKPASS_REQUIRE: 'force',
      },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /passphrases do not match; the vault was not created/);
    assert.equal(fs.readFileSync(count, 'utf8'), 'x\nx\n', 'askpass not asked twice');
    assert.ok(!fs.existsSync(vaultPath));
    r = await cli(['init', ...SMALL], ['']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /empty passphrase/);

    // A descriptor hands the passphrase over: one line, nothing to confirm (as gpg --passphrase-fd).
    r = await cli(['init', ...SMALL], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Created vault .*argon2id, 1024 KiB, t=1, p=1/);
    assert.equal(fs.statSync(vaultPath).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(vaultPath)).mode & 0o777, 0o700);
    assert.equal((await new VaultFile(vaultPath).unlock(Buffer.from(PASS))).identities.length, 0);

    const before = fs.readFileSync(vaultPath);
    r = await cli(['init', ...SMALL], [PASS, PASS]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `tsagent vault: a vault already exists at ${vaultPath}; not overwriting it\n`,
    );
    assert.ok(fs.readFileSync(vaultPath).equals(before));
  });

  it('import reads each key, asks an encrypted key for its passphrase once, and lists like ssh-keygen -l', async (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    const mk = (name: string, args: string[], pass = '') => {
      const f = path.join(keysDir, name);
      run(keygen, ['-q', ...args, '-N', pass, '-C', `${name}@cli`, '-f', f]);
      return f;
    };
    const ed = mk('ed', ['-t', 'ed25519']);
    const ecEnc = mk('ec-enc', ['-t', 'ecdsa', '-b', '384'], KEY_PASS);
    const rsaPem = mk('rsa-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM']);

    // A public key file fails before any prompt: no line is consumed, nothing written.
    const before = fs.readFileSync(vaultPath);
    let r = await cli(['import', ed + '.pub'], []);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${ed}.pub: this is a public key`));
    // A wrong key passphrase: named, nothing imported.
    r = await cli(['import', ed, ecEnc], [PASS, 'wrong']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`${ecEnc}: wrong passphrase for the OpenSSH private key; nothing was imported`),
    );
    assert.ok(fs.readFileSync(vaultPath).equals(before));
    // Wrong vault passphrase.
    r = await cli(['import', ed], ['not the vault pass']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsagent vault: wrong passphrase for vault ${vaultPath}\n`);

    r = await cli(['import', ed, ecEnc, rsaPem], [PASS, KEY_PASS]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stderr.match(/Identity added/g) ?? []).length, 3);
    r = await cli(['import', ed], [PASS]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /Already in the vault/);

    r = await cli(['list'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    const expected = [ed, ecEnc, rsaPem].map((f) => {
      const line = run(keygen, ['-l', '-f', f + '.pub']).trim();
      // PEM files carry no comment: the vault names them after the file, like ssh-add.
      return f === rsaPem ? line.replace('rsa-pem@cli', rsaPem) : line;
    });
    assert.deepEqual(r.stdout.trim().split('\n'), expected);
  });

  it('generate prints the public key; export-pub gives the same authorized_keys line', async () => {
    let r = await cli(['generate', '-t', 'ecdsa', '-b', '521', '-C', 'made here'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.trim();
    assert.match(line, /^ecdsa-sha2-nistp521 AAAA\S+ made here$/);
    if (keygen)
      assert.match(
        run(keygen, ['-l', '-f', '-'], line + '\n'),
        /^521 SHA256:\S+ made here \(ECDSA\)/,
      );
    r = await cli(['export-pub', 'made here'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), line);
    const fp = fingerprint(Buffer.from(line.split(' ')[1], 'base64'));
    r = await cli(['export-pub', fp.slice(0, 12)], [PASS]);
    assert.equal(r.stdout.trim(), line);

    const bad = [
      ['-t', 'rsa', '-b', '512'],
      ['-t', 'dsa'],
      ['-t', 'ed25519', '-b', '384'],
      ['-b', '256'],
    ];
    const results = await Promise.all(bad.map((args) => cli(['generate', ...args], [PASS])));
    results.forEach((res, i) =>
      assert.equal(res.code, 2, `generate ${bad[i].join(' ')}: ${res.stderr}`),
    );
  });

  it('set, rename and remove change the stored defaults and names', async () => {
    let r = await cli(['set', 'made here', '--confirm', '--lifetime', '1h30m'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['list'], [PASS]);
    assert.match(r.stdout, /521 SHA256:\S+ made here \(ECDSA\) \[confirm\] \[lifetime 5400s\]/);
    r = await cli(['set', 'made here', '--no-confirm', '--lifetime', 'none'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['list'], [PASS]);
    assert.match(r.stdout, /made here \(ECDSA\)\n/);
    const usage = await Promise.all([
      cli(['set', 'made here'], [PASS]),
      cli(['set', 'made here', '--lifetime', 'soon'], [PASS]),
    ]);
    assert.deepEqual(
      usage.map((u) => u.code),
      [2, 2],
    );

    r = await cli(['rename', 'made here', 'renamed'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['remove', 'renamed'], [PASS]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Identity removed: renamed/);
    r = await cli(['remove', 'renamed'], [PASS]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no key named "renamed" in vault/);
  });

  it('passwd re-encrypts with the new passphrase and KDF cost; verify checks it', async () => {
    let r = await cli(
      ['passwd', '--kdf-memory', '2048', '--kdf-time', '2'],
      [PASS, 'new pass', 'new pass'],
    );
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['verify'], ['new pass']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: OK, \d+ keys? \(format v1, argon2id, 2048 KiB, t=2, p=1\)/);
    r = await cli(['verify'], [PASS]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /wrong passphrase/);
    assert.equal((await cli(['passwd', '--kdf-memory', '10'], [])).code, 2);
    r = await cli(['passwd'], ['new pass', PASS, PASS]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('keeps secret key bytes out of every file next to the vault', async (t) => {
    if (!keygen) return t.skip('no imported keys without ssh-keygen');
    const vault = await new VaultFile(vaultPath).unlock(Buffer.from(PASS));
    const secrets = vault.identities.flatMap(secretParts);
    assert.ok(secrets.length > 0);
    assert.deepEqual(filesContainingSecrets(path.dirname(vaultPath), secrets), []);
  });

  it('reports damage and bad permissions before asking, with the fix', async () => {
    const copyDir = path.join(dir, 'copy');
    fs.mkdirSync(copyDir, { mode: 0o700 });
    const copy = path.join(copyDir, 'vault');
    fs.copyFileSync(vaultPath, copy);
    const damaged = fs.readFileSync(copy);
    damaged[200] ^= 1;
    fs.writeFileSync(copy, damaged);
    let r = await runVaultCli(['--vault', copy, '--passphrase-fd', '3', 'verify'], { lines: [] });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vault is damaged or was tampered with: checksum mismatch/);
    fs.chmodSync(vaultPath, 0o644);
    r = await cli(['list'], []);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `tsagent vault: vault ${vaultPath} is readable by group and others (mode 0644): run chmod 600 ${vaultPath}\n`,
    );
    fs.chmodSync(vaultPath, 0o600);
  });

  it('finds the vault through TSAGENT_VAULT and XDG_DATA_HOME', async () => {
    const base = { PATH: process.env.PATH, HOME: dir };
    let r = await runVaultCli(['list', '--passphrase-fd', '3'], {
      lines: [PASS],
      env: { ...base, TSAGENT_VAULT: vaultPath },
    });
    assert.equal(r.code, 0, r.stderr);
    r = await runVaultCli(['list', '--passphrase-fd', '3'], {
      lines: [PASS],
      env: { ...base, XDG_DATA_HOME: path.join(dir, 'data') },
    });
    assert.equal(r.code, 0, r.stderr);
  });

  it('uses SSH_ASKPASS like ssh-add, and explains when there is no way to ask', async () => {
    const answer = path.join(dir, 'answer');
    const record = path.join(dir, 'askpass-args');
    const askpass = path.join(dir, 'askpass.sh');
    fs.writeFileSync(answer, PASS + '\n', { mode: 0o600 });
    fs.writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${record}'\ncat '${answer}'\n`, {
      mode: 0o700,
    });
    const env = { PATH: process.env.PATH, HOME: dir, SSH_ASKPASS: askpass };
    const noFd = (args: string[], e: NodeJS.ProcessEnv) =>
      runVaultCli(['--vault', vaultPath, ...args], { env: e });

    let r = await noFd(['list'], { ...env, SSH_ASKPASS_REQUIRE: 'force' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(record, 'utf8'), 'Enter passphrase for the vault: \n');
    r = await noFd(['list'], { ...env, DISPLAY: ':99' });
    assert.equal(r.code, 0, r.stderr);
    // Without DISPLAY (and not forced), or with "never", askpass is not used.
    const refused = await Promise.all(
      [env, { ...env, DISPLAY: ':99', SSH_ASKPASS_REQUIRE: 'never' }].map((e) => noFd(['list'], e)),
    );
    for (const res of refused) {
      assert.equal(res.code, 1);
      assert.match(res.stderr, /standard input is not a terminal.*--passphrase-fd N.*SSH_ASKPASS/);
    }
    fs.writeFileSync(askpass, '#!/bin/sh\nexit 1\n', { mode: 0o700 });
    r = await noFd(['list'], { ...env, SSH_ASKPASS_REQUIRE: 'force' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /passphrase entry cancelled/);
  });

  it('reads the passphrase from a terminal without echo, and shows the KDF working', async (t) => {
    const script = ['/usr/bin/script', '/bin/script'].find((p) => fs.existsSync(p));
    if (!script) {
      if (process.env.CI) throw new Error('script(1) from util-linux is required on CI');
      return t.skip('script(1) not installed');
    }
    const entry = path.join(REPO_ROOT, 'dist/src/cli/vault.js');
    const child = spawn(
      script,
      ['-qfec', 'exec "$NODE" -e "$JS" vault --vault "$VAULT" list', '/dev/null'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          SHELL: '/bin/sh',
          TERM: 'dumb',
          NODE: process.execPath,
          JS: `require(${JSON.stringify(entry)}).runVault(process.argv.slice(1)).then((c) => process.exit(c))`,
          VAULT: vaultPath,
        },
      },
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let typed = false;
    child.stdout!.on('data', (d) => {
      out += d;
      // Type only once the prompt is up (raw mode set), as a person would.
      if (!typed && out.includes('Enter passphrase for the vault: ')) {
        typed = true;
        child.stdin!.write(PASS + '\r');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    assert.ok(!out.includes(PASS), `the passphrase was echoed: ${JSON.stringify(out)}`);
    assert.match(out, /deriving key…/);
    assert.match(out, /SHA256:\S+ .*\(ECDSA\)/);
  });

  it('exits 2 on usage errors and 0 for help', async () => {
    const usage = [
      [],
      ['bogus'],
      ['list', '--bogus'],
      ['rename', 'only-one'],
      ['--passphrase-fd', 'x', 'list'],
    ];
    const [help, ...results] = await Promise.all(
      [['--help'], ...usage].map((args) => runVaultCli(args)),
    );
    results.forEach((r, i) => assert.equal(r.code, 2, `${usage[i].join(' ')}: ${r.stderr}`));
    assert.match(results[4].stderr, /--passphrase-fd needs an integer/);
    assert.equal(help.code, 0);
    for (const sub of [
      'init',
      'import',
      'generate',
      'list',
      'export-pub',
      'remove',
      'rename',
      'set',
      'passwd',
      'verify',
    ])
      assert.match(help.stdout, new RegExp(`\\n  ${sub}\\b`));
  });
});

describe('passphrase source (ssh-add rules) and lifetimes', () => {
  it('chooses fd, askpass, terminal or nothing like OpenSSH readpass.c', () => {
    const pick = (env: NodeJS.ProcessEnv, stdinIsTTY: boolean, fd?: number) =>
      choosePassphraseSource({ env, stdinIsTTY, fd });
    assert.equal(pick({ SSH_ASKPASS_REQUIRE: 'force' }, true, 3), 'fd');
    assert.equal(pick({}, true), 'tty');
    assert.equal(pick({ DISPLAY: ':0' }, true), 'tty');
    assert.equal(pick({ DISPLAY: ':0', SSH_ASKPASS_REQUIRE: 'prefer' }, true), 'askpass');
    assert.equal(pick({ SSH_ASKPASS_REQUIRE: 'prefer' }, true), 'tty');
    assert.equal(pick({ SSH_ASKPASS_REQUIRE: 'force' }, true), 'askpass');
    assert.equal(pick({ DISPLAY: ':0' }, false), 'askpass');
    assert.equal(pick({ WAYLAND_DISPLAY: 'wayland-0' }, false), 'askpass');
    assert.equal(pick({ DISPLAY: ':0', SSH_ASKPASS_REQUIRE: 'never' }, false), 'none');
    assert.equal(pick({}, false), 'none');
  });

  it('parses lifetimes as seconds, ssh time formats or none', () => {
    assert.equal(parseLifetime('3600'), 3600);
    assert.equal(parseLifetime('90m'), 5400);
    assert.equal(parseLifetime('1h30m'), 5400);
    assert.equal(parseLifetime('2d'), 172800);
    assert.equal(parseLifetime('none'), null);
    for (const bad of ['0', '', 'soon', '-5', '1x', '1.5h'])
      assert.throws(() => parseLifetime(bad), /--lifetime/);
  });
});
