// OpenSSH's patterns (match.c match_pattern / match_pattern_list / match_hostname)
// as src/ssh/pattern.ts matches them, and the agent's use of them: destination
// users must never stall the event loop (issue 11 point 4).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { matchHostname, matchPattern, matchPatternList } from '../src/ssh/pattern';
import { destinationsFromSpecs, identityPermitted } from '../src/agent/destination';
import { DestinationConstraint, parseDestinationConstraints } from '../src/agent/constraints';
import { WireError, WireWriter } from '../src/ssh/wire';

describe('matchPattern (OpenSSH match_pattern)', () => {
  const CASES: Array<[string, string, boolean]> = [
    ['', '', true],
    ['', '*', true],
    ['', '?', false],
    ['a', '', false],
    ['abc', 'abc', true],
    ['abc', 'ab', false],
    ['abc', 'abcd', false],
    ['abc', 'a*', true],
    ['abc', '*c', true],
    ['abc', '*b*', true],
    ['abc', 'a?c', true],
    ['abc', '???', true],
    ['abc', '????', false],
    ['abc', '**a**b**c**', true],
    ['aXbXc', 'a*b*c', true],
    ['aXbXd', 'a*b*c', false],
    ['mississippi', '*sip*', true],
    ['mississippi', 'm*iss*ppi', true],
    ['mississippi', 'm*iss*ppx', false],
    // Only `*` and `?` are special: brackets, dots, backslashes are themselves.
    ['[goober]:2222', '[goober]:2222', true],
    ['g:2222', '[goober]:2222', false],
    ['a.c', 'a.c', true],
    ['abc', 'a.c', false],
    ['a\\b', 'a\\b', true],
    ['ab', 'a\\b', false],
    ['(x)+', '(x)+', true],
    ['x', '(x)+', false],
    ['^$', '^$', true],
    // Case matters unless asked otherwise (user names, principals).
    ['Root', 'root', false],
    // `?` is one byte, as in OpenSSH's C: "é" is two.
    ['é', '?', false],
    ['é', '??', true],
    ['xéy', 'x*y', true],
    // A newline is an ordinary byte too (a RegExp's `.` would not match it).
    ['a\nb', 'a?b', true],
    ['a\nb', 'a*', true],
  ];
  for (const [s, p, want] of CASES)
    test(`${JSON.stringify(s)} ~ ${JSON.stringify(p)}: ${want}`, () => {
      assert.equal(matchPattern(s, p), want);
    });

  test('lowercase: ASCII letters compare without case, nothing else folds', () => {
    assert.equal(matchPattern('goober.example', 'GOOBER.*', { lowercase: true }), true);
    assert.equal(matchPattern('GOOBER.EXAMPLE', '*.example', { lowercase: true }), true);
    assert.equal(matchPattern('É', 'é', { lowercase: true }), false);
  });

  test('agrees with a reference backtracking matcher on random inputs', () => {
    // The textbook recursive definition: exponential, so only on tiny inputs.
    const ref = (s: Buffer, p: Buffer, i = 0, j = 0): boolean => {
      if (j === p.length) return i === s.length;
      if (p[j] === 0x2a) return ref(s, p, i, j + 1) || (i < s.length && ref(s, p, i + 1, j));
      if (i === s.length) return false;
      return (p[j] === 0x3f || p[j] === s[i]) && ref(s, p, i + 1, j + 1);
    };
    const alphabet = 'ab*?';
    for (let n = 0; n < 3000; n++) {
      const pick = (len: number, chars: string) =>
        Array.from({ length: len }, () => chars[crypto.randomInt(chars.length)]).join('');
      const s = pick(crypto.randomInt(8), 'ab');
      const p = pick(crypto.randomInt(7), alphabet);
      assert.equal(
        matchPattern(s, p),
        ref(Buffer.from(s), Buffer.from(p)),
        `${JSON.stringify(s)} ~ ${JSON.stringify(p)}`,
      );
    }
  });

  test('no backtracking blow-up: *a*a*a*a*a*a*b against 60 and 4000 characters is instant', () => {
    const start = process.hrtime.bigint();
    assert.equal(matchPattern('a'.repeat(60), '*a*a*a*a*a*a*b'), false);
    assert.equal(matchPattern('a'.repeat(4000), '*a*a*a*a*a*a*a*a*a*a*b'), false);
    assert.equal(matchPattern('a'.repeat(4000) + 'b', '*a*a*a*a*a*a*a*a*a*a*b'), true);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 100, `took ${ms} ms`);
  });
});

describe('matchPatternList / matchHostname (OpenSSH match_pattern_list, match_hostname)', () => {
  test('comma-separated alternatives; a negated match wins', () => {
    assert.equal(matchPatternList('goober', 'boomer,goo*'), 1);
    assert.equal(matchPatternList('goober', 'boomer,x*'), 0);
    assert.equal(matchPatternList('goober', '*,!goober'), -1);
    assert.equal(matchPatternList('goober', '!goober,*'), -1);
    assert.equal(matchPatternList('boomer', '*,!goober'), 1);
    assert.equal(matchPatternList('boomer', '!goober'), 0);
  });
  test('host names compare without ASCII case', () => {
    assert.equal(matchHostname('goober.example.com', '*.EXAMPLE.COM'), 1);
    assert.equal(matchHostname('goober.example.com', '*.example.com,!GOOBER.*'), -1);
  });
});

describe('destination user patterns do not stall the agent', () => {
  test('a 60-character user against *a*a*a*a*a*a*b is decided at once', () => {
    const hostKey = Buffer.from('host key blob');
    const dests: DestinationConstraint[] = [
      {
        from: { user: null, hostname: null, keys: [] },
        to: { user: '*a*a*a*a*a*a*b', hostname: 'goober', keys: [{ key: hostKey, isCA: false }] },
      },
    ];
    const state = {
      binds: [{ hostKey, sessionId: Buffer.alloc(32, 1), forwarded: false }],
      bindAttempted: true,
    };
    const start = process.hrtime.bigint();
    const perm = identityPermitted(dests, state, 'a'.repeat(60));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(perm.ok, false);
    assert.ok(ms < 100, `took ${ms} ms`);
    assert.equal(identityPermitted(dests, state, 'a'.repeat(59) + 'b').ok, true);
  });
});

describe('destination constraints cap user and host name lengths', () => {
  const key = Buffer.from('host key blob');
  const hop = (user: string, host: string, keys: Buffer[]) => {
    const w = new WireWriter().string(user).string(host).string('');
    for (const k of keys) w.string(k).byte(0);
    return w.toBuffer();
  };
  const constraint = (user: string, host: string) =>
    new WireWriter()
      .string(
        new WireWriter()
          .string(hop('', '', []))
          .string(hop(user, host, [key]))
          .string('')
          .toBuffer(),
      )
      .toBuffer();

  test('a user of 255 bytes and a host of 1024 are accepted; one more byte is malformed', () => {
    assert.equal(
      parseDestinationConstraints(constraint('u'.repeat(255), 'h'.repeat(1024))).length,
      1,
    );
    assert.throws(
      () => parseDestinationConstraints(constraint('u'.repeat(256), 'goober')),
      (e: unknown) => e instanceof WireError && /user name over 255 bytes/.test(e.message),
    );
    assert.throws(
      () => parseDestinationConstraints(constraint('', 'h'.repeat(1025))),
      (e: unknown) => e instanceof WireError && /host name over 1024 bytes/.test(e.message),
    );
    // Bytes, not characters: 128 two-byte characters are 256 bytes.
    assert.throws(
      () => parseDestinationConstraints(constraint('é'.repeat(128), 'goober')),
      WireError,
    );
  });

  test('a login user longer than any hop may name matches no pattern, not even *', () => {
    const dests: DestinationConstraint[] = [
      {
        from: { user: null, hostname: null, keys: [] },
        to: { user: '*', hostname: 'goober', keys: [{ key, isCA: false }] },
      },
    ];
    const state = {
      binds: [{ hostKey: key, sessionId: Buffer.alloc(32, 1), forwarded: false }],
      bindAttempted: true,
    };
    assert.equal(identityPermitted(dests, state, 'u'.repeat(255)).ok, true);
    assert.equal(identityPermitted(dests, state, 'u'.repeat(256)).ok, false);
  });

  test('vault --allow specs are held to the same caps', () => {
    assert.throws(() => destinationsFromSpecs([`${'u'.repeat(256)}@goober`], () => []), /over 255/);
    assert.throws(() => destinationsFromSpecs(['h'.repeat(1025)], () => []), /over 1024/);
    assert.equal(destinationsFromSpecs([`${'u'.repeat(255)}@goober`], () => []).length, 1);
  });
});
