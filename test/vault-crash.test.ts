// Crash safety: a child process rewrites the vault in a loop and is killed
// with SIGKILL at random moments, many times. After every kill the vault must
// open and hold exactly one of the versions the writer produced, never a mix,
// and no file in the directory may contain secret key bytes.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { VaultKey } from '../src/vault/kdf';
import { generateKey } from '../src/vault/sshkey';
import { VaultFile } from '../src/vault/store';
import {
  filesContainingSecrets,
  REPO_ROOT,
  secretParts,
  SMALL_KDF,
  tempDir,
} from './fixtures/vault';

const MAX_KILLS = 200;
const TIME_BUDGET_MS = 20_000;

// The writer gets the derived key (no argon2 per start) and rewrites forever:
// version N has comment "gen-N" and lifetime N+1, so a torn mix is detectable.
const WRITER = `
const { VaultFile } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/vault/store.js'))});
const k = JSON.parse(process.argv[1]);
const key = { kdf: k.kdf, salt: Buffer.from(k.salt, 'hex'), encKey: Buffer.from(k.encKey, 'hex'), keyCheck: Buffer.from(k.keyCheck, 'hex') };
const vault = new VaultFile(process.argv[2]).openWithKey(key);
let n = Number(vault.identities[0].comment.slice(4));
process.stdout.write('ready\\n');
for (;;) {
  n++;
  vault.commit([{ ...vault.identities[0], comment: 'gen-' + n, lifetime: n + 1 }]);
}
`;

function startWriter(key: VaultKey, vaultPath: string): Promise<ChildProcess> {
  const arg = JSON.stringify({
    kdf: key.kdf,
    salt: key.salt.toString('hex'),
    encKey: key.encKey.toString('hex'),
    keyCheck: key.keyCheck.toString('hex'),
  });
  const child = spawn(process.execPath, ['-e', WRITER, arg, vaultPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) =>
      reject(new Error(`writer exited (${code}) before it was ready: ${stderr}`)),
    );
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

it('survives SIGKILL at random points of a write, many times', async (t) => {
  const dir = path.join(tempDir(t), 'tsagent');
  const file = new VaultFile(path.join(dir, 'vault'));
  const passphrase = Buffer.from('crash test passphrase');
  const created = await file.create(passphrase, SMALL_KDF);
  const key = await generateKey('ed25519', undefined, 'gen-0');
  created.add([key]);
  const secrets = secretParts(key);
  let live: ChildProcess | undefined;
  t.after(() => live?.kill('SIGKILL'));

  const checkVersion = (p: string, what: string): number => {
    const ids = file.openWithKey(created.key, p).identities;
    if (ids.length === 0 && p === file.backupPath) return -1; // the empty vault before the first add
    assert.equal(ids.length, 1, what);
    const n = Number(/^gen-(\d+)$/.exec(ids[0].comment)?.[1]);
    assert.ok(Number.isInteger(n), `${what}: comment ${ids[0].comment}`);
    assert.ok(ids[0].privateFields.equals(key.privateFields), `${what}: key material`);
    assert.equal(ids[0].lifetime, n === 0 ? undefined : n + 1, `${what}: lifetime with gen-${n}`);
    return n;
  };

  const start = Date.now();
  let kills = 0;
  let lastGeneration = 0;
  let tempLeft = 0;
  while (kills < MAX_KILLS && Date.now() - start < TIME_BUDGET_MS) {
    live = await startWriter(created.key, file.path);
    await new Promise((r) => setTimeout(r, Math.random() * 20));
    await kill(live);
    kills++;
    const n = checkVersion(file.path, `after kill ${kills}`);
    assert.ok(n >= lastGeneration, `went back from gen-${lastGeneration} to gen-${n}`);
    lastGeneration = n;
    if (fs.existsSync(file.backupPath)) {
      const b = checkVersion(file.backupPath, `backup after kill ${kills}`);
      assert.ok(b <= n, `backup gen-${b} newer than the vault gen-${n}`);
    }
    const names = fs.readdirSync(dir);
    if (names.some((x) => x.includes('.tmp-'))) tempLeft++;
    assert.deepEqual(
      filesContainingSecrets(dir, secrets),
      [],
      `secret bytes on disk after kill ${kills}`,
    );
  }
  live = undefined;
  t.diagnostic(
    `${kills} kills in ${Date.now() - start} ms; reached gen-${lastGeneration}; ` +
      `${tempLeft} kills left a temp file behind (interrupted mid-write)`,
  );
  // Loose bounds: a loaded machine gets fewer kills, but the run must have exercised writes.
  assert.ok(kills >= 10, `only ${kills} kills in the time budget`);
  assert.ok(
    lastGeneration > 0 && tempLeft > 0,
    'kills landed both between and in the middle of writes',
  );
  // And the full path, passphrase and all, still works.
  const final = await file.unlock(passphrase);
  assert.equal(final.identities[0].comment, `gen-${lastGeneration}`);
});
