// package.json `allowScripts` (npm 11): every installed dependency that has an
// install script has a reviewed decision, so `npm ci` on a fresh clone prints
// no "install scripts not yet covered by allowScripts" warning and installs the
// same thing every time. An entry is `name` (any version) or `name@version`
// (that version only; `a || b` lists several), true to allow, false to deny.
// npm trusts a version only from the lockfile's `resolved` URL (arborist's
// script-allowed.js), and this lockfile has none (omit-lockfile-registry-resolved):
// a pinned allow is then refused, so tsagent's decisions are by name, and the
// lockfile's integrity hashes pin the versions they apply to.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { mkTemp, rmTemp, run } from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');

/** The lifecycle scripts npm runs for a dependency at install time. */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall'] as const;

interface Installed {
  name: string;
  version: string;
  scripts: string[];
  /** Its key in package-lock.json's `packages` (node_modules/a/node_modules/b). */
  lockKey: string;
}

/**
 * Installed packages with install scripts, nested ones included. A binding.gyp
 * without an install or preinstall script counts: npm then runs `node-gyp rebuild`.
 */
export function withInstallScripts(nodeModules: string): Installed[] {
  const out: Installed[] = [];
  const root = path.dirname(nodeModules);
  const visit = (dir: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const pkgDir = path.join(dir, n);
      if (n.startsWith('@')) {
        visit(pkgDir);
        continue;
      }
      let pkg: { name?: string; version?: string; scripts?: Record<string, string> };
      try {
        pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
      } catch {
        continue;
      }
      const scripts: string[] = INSTALL_SCRIPTS.filter((s) => pkg.scripts?.[s]);
      if (
        !pkg.scripts?.install &&
        !pkg.scripts?.preinstall &&
        fs.existsSync(path.join(pkgDir, 'binding.gyp'))
      )
        scripts.push('install (implicit node-gyp rebuild)');
      if (scripts.length > 0)
        out.push({
          name: pkg.name ?? n,
          version: pkg.version ?? '',
          scripts,
          lockKey: path.relative(root, pkgDir),
        });
      visit(path.join(pkgDir, 'node_modules'));
    }
  };
  visit(nodeModules);
  return out;
}

/**
 * The entry of `allowScripts` that decides for this package, if any. A pinned
 * entry needs a version npm can verify (`verified`): without one, npm lets a
 * pinned deny block and refuses a pinned allow.
 */
export function decisionFor(
  allow: Record<string, boolean>,
  p: Installed,
  verified: boolean,
): string | undefined {
  return Object.keys(allow).find((key) => {
    const at = key.lastIndexOf('@');
    if (at <= 0) return key === p.name;
    if (key.slice(0, at) !== p.name) return false;
    if (!verified) return allow[key] === false;
    return key
      .slice(at + 1)
      .split('||')
      .some((v) => v.trim() === p.version);
  });
}

/** What is wrong with a project's decisions: undecided packages, entries that decide nothing. */
export function checkAllowScripts(projectDir: string): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectDir, 'package.json'), 'utf8'));
  const allow: Record<string, boolean> = pkg.allowScripts ?? {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(allow))
    if (typeof v !== 'boolean') problems.push(`allowScripts["${k}"] is not true or false`);
  const installed = withInstallScripts(path.join(projectDir, 'node_modules'));
  let lock: { packages?: Record<string, { resolved?: string }> } = {};
  try {
    lock = JSON.parse(fs.readFileSync(path.join(projectDir, 'package-lock.json'), 'utf8'));
  } catch {
    // No lockfile: no version is verifiable.
  }
  const used = new Set<string>();
  for (const p of installed) {
    const key = decisionFor(allow, p, !!lock.packages?.[p.lockKey]?.resolved);
    if (key === undefined)
      problems.push(
        `${p.name}@${p.version} has install scripts (${p.scripts.join(', ')}) but no decision in allowScripts`,
      );
    else used.add(key);
  }
  for (const k of Object.keys(allow))
    if (!used.has(k)) problems.push(`allowScripts["${k}"] matches no installed install script`);
  return problems;
}

describe('allowScripts: a reviewed decision for every install script', () => {
  const tmp: string[] = [];
  after(() => tmp.forEach(rmTemp));

  it("every dependency with an install script is allowed or denied in tsagent's package.json", () => {
    // The tests are compiled with the installed typescript: node_modules is there.
    assert.ok(withInstallScripts(path.join(REPO, 'node_modules')).length > 0);
    assert.deepEqual(checkAllowScripts(REPO), []);
  });

  it('the decisions give a working install: argon2 built (allowed), koffi prebuilt (denied)', async () => {
    const allow = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
      .allowScripts as Record<string, boolean>;
    // argon2's script tests its prebuild and compiles when it does not load
    // (argon2 0.45.1's linux-x64 prebuild crashes Node 20 on load): needed.
    assert.equal(allow.argon2, true);
    // koffi loads its binary from @koromix/koffi-<platform> (an optional
    // dependency for every Linux target); its script only re-checks that or
    // builds with cmake: not needed. ssh2's script builds an optional crypto
    // binding, cpu-features is ssh2's optional AES-NI probe: ssh2 works without both.
    assert.equal(allow.koffi, false);
    assert.equal(allow.ssh2, false);
    assert.equal(allow['cpu-features'], false);
    // Each loads in a process of its own (a bad binary crashes, it does not throw).
    const r = await run(
      process.execPath,
      [
        '-e',
        `const a = require('argon2');
         const k = require('koffi');
         const getpid = k.load('libc.so.6').func('int getpid()');
         if (getpid() !== process.pid) throw new Error('koffi: getpid');
         a.hash('x', { type: a.argon2id, memoryCost: 1024, timeCost: 1 })
           .then((h) => a.verify(h, 'x'))
           .then((ok) => console.log(ok ? 'ok' : 'argon2: verify'));`,
      ],
      { cwd: REPO, timeout: 30_000 },
    );
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ok\n');
  });

  it('the check fails on an undecided package, a stale entry, and honours version pins', () => {
    const dir = mkTemp('tsagent-allow-');
    tmp.push(dir);
    const mod = (rel: string, json: object, gyp = false) => {
      const d = path.join(dir, 'node_modules', rel);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'package.json'), JSON.stringify(json));
      if (gyp) fs.writeFileSync(path.join(d, 'binding.gyp'), '{}');
    };
    mod('plain', { name: 'plain', version: '1.0.0', scripts: { test: 'x' } });
    mod('native', { name: 'native', version: '2.1.0', scripts: { install: 'node-gyp rebuild' } });
    mod('@s/post', { name: '@s/post', version: '0.1.0', scripts: { postinstall: 'x' } });
    mod('gyp-only', { name: 'gyp-only', version: '3.0.0' }, true);
    mod('plain/node_modules/deep', {
      name: 'deep',
      version: '1.0.0',
      scripts: { preinstall: 'x' },
    });
    const write = (allowScripts: object) =>
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ allowScripts }));

    write({});
    assert.deepEqual(
      checkAllowScripts(dir)
        .map((p) => p.split(' ')[0])
        .sort(),
      ['@s/post@0.1.0', 'deep@1.0.0', 'gyp-only@3.0.0', 'native@2.1.0'],
    );
    const lockfile = (resolved: boolean) =>
      fs.writeFileSync(
        path.join(dir, 'package-lock.json'),
        JSON.stringify({
          packages: {
            'node_modules/native': resolved
              ? { resolved: 'https://registry.npmjs.org/native/-/native-2.1.0.tgz' }
              : {},
          },
        }),
      );
    lockfile(true);
    write({ 'native@2.1.0': true, '@s/post': false, 'gyp-only@1.0.0 || 3.0.0': false, deep: true });
    assert.deepEqual(checkAllowScripts(dir), []);
    // Without a resolved URL npm cannot verify the version: the pinned allow is refused…
    lockfile(false);
    assert.deepEqual(checkAllowScripts(dir), [
      'native@2.1.0 has install scripts (install) but no decision in allowScripts',
      'allowScripts["native@2.1.0"] matches no installed install script',
    ]);
    // …and a pinned deny still blocks.
    write({ native: true, '@s/post': false, 'gyp-only@1.0.0 || 3.0.0': false, deep: true });
    assert.deepEqual(checkAllowScripts(dir), []);
    lockfile(true);
    // A pin for another version decides nothing (an upgrade needs a new review).
    write({ 'native@2.0.0': true, '@s/post': false, 'gyp-only': false, deep: true });
    assert.deepEqual(checkAllowScripts(dir), [
      'native@2.1.0 has install scripts (install) but no decision in allowScripts',
      'allowScripts["native@2.0.0"] matches no installed install script',
    ]);
    write({ native: 'yes', '@s/post': false, 'gyp-only': false, deep: true });
    assert.deepEqual(checkAllowScripts(dir), ['allowScripts["native"] is not true or false']);
  });
});
