// OpenSSH's patterns (match.c): `*` matches any run of bytes, `?` any one byte,
// everything else itself; lists are comma-separated with `!` for negation.
// The one matcher of the agent (destination users, known_hosts names,
// certificate principals). No RegExp: OpenSSH's recursive match_pattern, or a
// pattern turned into a RegExp, backtracks exponentially on `*a*a*a*a*b`.

/** ASCII lowercase of one byte, as tolower() in the C locale. */
const lower = (b: number): number => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);

const STAR = 0x2a;
const QUESTION = 0x3f;

/**
 * Does `s` match `pattern` as a whole? Greedy, remembering only the last `*`:
 * when a later part fails, that star takes one more byte and the rest is tried
 * again. Earlier stars never need revisiting (whatever they matched, the last
 * star can absorb), so the work is at most |s|·|pattern| steps, never exponential.
 * Bytes compare as UTF-8, so `?` is one byte as in OpenSSH.
 */
export function matchPattern(
  s: string,
  pattern: string,
  opts: { lowercase?: boolean } = {},
): boolean {
  const str = Buffer.from(s, 'utf8');
  const pat = Buffer.from(pattern, 'utf8');
  const fold = opts.lowercase ? lower : (b: number) => b;
  let si = 0;
  let pi = 0;
  let starAt = -1; // index in pat just after the last `*` seen
  let starFrom = 0; // where in str that star's match currently ends
  while (si < str.length) {
    if (pi < pat.length && pat[pi] === STAR) {
      starAt = ++pi;
      starFrom = si;
    } else if (pi < pat.length && (pat[pi] === QUESTION || fold(pat[pi]) === fold(str[si]))) {
      si++;
      pi++;
    } else if (starAt >= 0) {
      pi = starAt;
      si = ++starFrom;
    } else {
      return false;
    }
  }
  while (pi < pat.length && pat[pi] === STAR) pi++;
  return pi === pat.length;
}

/**
 * OpenSSH's match_pattern_list: 1 if `s` matches a pattern of the comma-separated
 * list, -1 if it matches a negated one (`!pattern`, which wins), 0 otherwise.
 */
/** match.c match_pattern_list's limit on one sub-pattern. */
const MAX_SUBPATTERN = 1023;

export function matchPatternList(
  s: string,
  list: string,
  opts: { lowercase?: boolean } = {},
): -1 | 0 | 1 {
  let hit: 0 | 1 = 0;
  for (const item of list.split(',')) {
    const negated = item.startsWith('!');
    const pattern = negated ? item.slice(1) : item;
    // match.c: a sub-pattern of 1024 bytes or more makes the whole list fail to match.
    if (Buffer.byteLength(pattern) > MAX_SUBPATTERN) return 0;
    if (!matchPattern(s, pattern, opts)) continue;
    if (negated) return -1;
    hit = 1;
  }
  return hit;
}

/** OpenSSH's match_hostname: host names compare without regard to ASCII case. */
export function matchHostname(host: string, list: string): -1 | 0 | 1 {
  return matchPatternList(host, list, { lowercase: true });
}
