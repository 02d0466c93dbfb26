// The provider allow-list (src/agent/provider-allowlist.ts): OpenSSH's
// match_pattern / match_pattern_list semantics, and `-P` checks on the
// realpath of the provider.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_ALLOWED_PROVIDERS,
  ProviderAllowList,
  matchPattern,
  matchPatternList,
} from '../src/agent/provider-allowlist';
import { mkTemp, rmTemp } from './fixtures/run';

/** match.c match_pattern, written as its recursive definition (fine for short inputs). */
const bytes = (x: string): string => Buffer.from(x, 'utf8').toString('latin1');

function reference(s: string, p: string): boolean {
  if (p.length === 0) return s.length === 0;
  if (p[0] === '*') return reference(s, p.slice(1)) || (s.length > 0 && reference(s.slice(1), p));
  if (s.length === 0) return false;
  return (p[0] === '?' || p[0] === s[0]) && reference(s.slice(1), p.slice(1));
}

describe('matchPattern (match.c match_pattern)', () => {
  it('wildcards: * is any run (slashes too), ? is one character', () => {
    const yes: [string, string][] = [
      ['/usr/lib/x.so', '/usr/lib*/*'],
      ['/usr/lib64/pkcs11/opensc.so', '/usr/lib*/*'],
      ['/usr/lib/x86_64-linux-gnu/a/b.so', '/usr/lib*/*'],
      ['abc', 'a?c'],
      ['', ''],
      ['', '*'],
      ['abc', '***'],
      ['aXbXc', '*b*c'],
      ['mississippi', 'm*iss*ppi'],
    ];
    const no: [string, string][] = [
      ['/usr/libexec', '/usr/lib*/*'],
      ['/usr/local/lib/x.so', '/usr/lib*/*'],
      ['/tmp/evil.so', '/usr/lib*/*'],
      ['ac', 'a?c'],
      ['abcd', 'a?c'],
      ['abc', ''],
      ['ABC', 'abc'],
      ['abc', 'ab'],
    ];
    for (const [s, p] of yes) assert.ok(matchPattern(s, p), `${s} ~ ${p}`);
    for (const [s, p] of no) assert.ok(!matchPattern(s, p), `${s} !~ ${p}`);
  });

  it('agrees with the recursive definition', () => {
    const chars = fc.constantFrom('a', 'b', '/', '.', 'é');
    const str = fc.array(chars, { maxLength: 8 }).map((a) => a.join(''));
    const pat = fc
      .array(fc.oneof(chars, fc.constantFrom('*', '?')), { maxLength: 8 })
      .map((a) => a.join(''));
    fc.assert(
      // match.c compares C chars: the reference runs on the UTF-8 bytes ("é" is two, "?" one).
      fc.property(str, pat, (s, p) => matchPattern(s, p) === reference(bytes(s), bytes(p))),
      { numRuns: 3000 },
    );
  });

  it('a pattern built to make a backtracking matcher explode answers at once', () => {
    const s = 'a'.repeat(20_000);
    assert.ok(!matchPattern(s, '*a*a*a*a*a*a*a*a*b'));
    assert.ok(matchPattern(s + 'b', '*a*a*a*a*a*a*a*a*b'));
  });
});

describe('matchPatternList (match.c match_pattern_list)', () => {
  it('comma-separated; any positive match is 1; a negated match is -1 and wins', () => {
    assert.equal(matchPatternList('/usr/lib/a.so', DEFAULT_ALLOWED_PROVIDERS), 1);
    assert.equal(matchPatternList('/usr/local/lib64/a.so', DEFAULT_ALLOWED_PROVIDERS), 1);
    assert.equal(matchPatternList('/opt/a.so', DEFAULT_ALLOWED_PROVIDERS), 0);
    assert.equal(matchPatternList('/usr/lib/bad.so', '/usr/lib/*,!/usr/lib/bad.so'), -1);
    assert.equal(matchPatternList('/usr/lib/bad.so', '!/usr/lib/bad.so,/usr/lib/*'), -1);
    assert.equal(matchPatternList('/usr/lib/good.so', '/usr/lib/*,!/usr/lib/bad.so'), 1);
    assert.equal(
      matchPatternList('/usr/lib/good.so', '!/usr/lib/bad.so'),
      0,
      'negation alone allows nothing',
    );
    assert.equal(matchPatternList('/x', ''), 0);
    assert.equal(
      matchPatternList('/x', `/${'y'.repeat(2000)},/x`),
      0,
      'an over-long sub-pattern stops the list',
    );
  });
});

describe('ProviderAllowList (ssh-agent -P)', () => {
  let dir: string;
  let allowed: string;
  let outside: string;
  before(() => {
    dir = fs.realpathSync(mkTemp());
    allowed = path.join(dir, 'allowed');
    outside = path.join(dir, 'outside');
    fs.mkdirSync(allowed);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(allowed, 'real.so'), '');
    fs.writeFileSync(path.join(outside, 'evil.so'), '');
    fs.symlinkSync(path.join(outside, 'evil.so'), path.join(allowed, 'link-out.so'));
    fs.symlinkSync(path.join(allowed, 'real.so'), path.join(outside, 'link-in.so'));
  });
  after(() => rmTemp(dir));

  it('allows a path the list matches, answering its canonical path', async () => {
    const list = new ProviderAllowList(`${allowed}/*`);
    assert.deepEqual(await list.check(path.join(allowed, 'real.so')), {
      ok: true,
      path: path.join(allowed, 'real.so'),
    });
    assert.deepEqual(await list.check(path.join(allowed, '..', 'allowed', 'real.so')), {
      ok: true,
      path: path.join(allowed, 'real.so'),
    });
  });

  it('judges the symlink target, not the link', async () => {
    const list = new ProviderAllowList(`${allowed}/*`);
    const out = await list.check(path.join(allowed, 'link-out.so'));
    assert.ok(!out.ok);
    assert.match(out.message, /outside\/evil\.so" is not allowed/);
    const inside = await list.check(path.join(outside, 'link-in.so'));
    assert.deepEqual(inside, { ok: true, path: path.join(allowed, 'real.so') });
  });

  it('refuses a path outside, a negated one, and one that does not exist', async () => {
    const list = new ProviderAllowList(`${dir}/*,!${allowed}/real.so`);
    const neg = await list.check(path.join(allowed, 'real.so'));
    assert.ok(!neg.ok);
    assert.ok(
      (await new ProviderAllowList(`${allowed}/*`).check(path.join(outside, 'evil.so'))).ok ===
        false,
    );
    const missing = await list.check(path.join(allowed, 'missing.so'));
    assert.ok(!missing.ok);
    assert.match(missing.message, /realpath: ENOENT/);
  });

  it('the default allows /usr/lib*/* and /usr/local/lib*/* only', async () => {
    const list = new ProviderAllowList();
    assert.equal(list.patterns, '/usr/lib*/*,/usr/local/lib*/*');
    const f = path.join(dir, 'x.so');
    fs.writeFileSync(f, '');
    assert.ok(!(await list.check(f)).ok);
    for (const lib of [
      '/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so',
      '/usr/lib/softhsm/libsofthsm2.so',
    ])
      if (fs.existsSync(lib))
        assert.deepEqual(await list.check(lib), { ok: true, path: fs.realpathSync(lib) });
  });

  it('escapes what it reports', async () => {
    const res = await new ProviderAllowList('/nowhere/*').check(path.join(dir, 'bad\x1b[31m.so'));
    assert.ok(!res.ok);
    assert.ok(!res.message.includes('\x1b'));
    assert.match(res.message, /bad\\x1b\[31m\.so/);
  });
});
