// escapeText (src/ssh/escape.ts): every control, format and bidi character is a visible escape.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeText } from '../src/ssh/escape';

const cases: [string | Buffer, string][] = [
  ['plain comment user@host', 'plain comment user@host'],
  ['a\nLogin: root', 'a\\nLogin: root'],
  ['\r\t', '\\r\\t'],
  ['\x1b[2J\x1b]0;title\x07', '\\x1b[2J\\x1b]0;title\\x07'],
  ['\x7f\x85\x9b', '\\x7f\\x85\\x9b'],
  ['evil\u202etxt.exe', 'evil\\u{202e}txt.exe'],
  [
    '\u2066x\u2069\u200b\u200f\ufeff\u061c',
    '\\u{2066}x\\u{2069}\\u{200b}\\u{200f}\\u{feff}\\u{61c}',
  ],
  ['a\u2028b\u2029c', 'a\\u{2028}b\\u{2029}c'],
  ['back\\x1b slash', 'back\\\\x1b slash'],
  ['\ud800 lone', '\\u{d800} lone'],
  ['ünïcödé ok 鍵', 'ünïcödé ok 鍵'],
  [Buffer.from('bytes\n'), 'bytes\\n'],
  [Buffer.from([0x61, 0xff, 0xc3, 0x1b, 0x5c]), 'a\\xff\\xc3\\x1b\\\\'],
  [Buffer.from('鍵', 'utf8'), '鍵'],
];

for (const [input, want] of cases)
  test(`escapeText ${JSON.stringify(input.toString())}`, () =>
    assert.equal(escapeText(input), want));

test('escapeText output never holds a control, format or bidi character', () => {
  let all = '';
  for (let cp = 0; cp < 0x3000; cp++)
    if (cp < 0xd800 || cp > 0xdfff) all += String.fromCodePoint(cp);
  assert.doesNotMatch(escapeText(all), /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u);
});
