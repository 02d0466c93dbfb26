// Which PKCS#11 providers and FIDO middlewares the agent may load: OpenSSH's
// `ssh-agent -P` (ssh-agent.c: realpath of the provider, then
// match_pattern_list against the allow-list; default DEFAULT_ALLOWED_PROVIDERS
// "/usr/lib*/*,/usr/local/lib*/*"). A library loaded into a helper runs code
// as the user, so a path from a client is only as trusted as this list.

import * as fs from 'node:fs';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';

export const DEFAULT_ALLOWED_PROVIDERS = '/usr/lib*/*,/usr/local/lib*/*';
/** match.c match_pattern_list: a sub-pattern this long never matches. */
const MAX_SUBPATTERN = 1023;

/**
 * match.c match_pattern: `*` matches any run of characters (slashes too), `?`
 * any one character, everything else itself. Iterative, remembering only the
 * last `*`: O(|s|·|pattern|) at worst, never exponential.
 */
export function matchPattern(s: string, pattern: string): boolean {
  const str = Array.from(s);
  const pat = Array.from(pattern);
  let i = 0;
  let p = 0;
  let star = -1; // index in pat of the last '*'
  let mark = 0; // where in str that '*' started matching
  while (i < str.length) {
    if (p < pat.length && (pat[p] === '?' || (pat[p] !== '*' && pat[p] === str[i]))) {
      i++;
      p++;
    } else if (p < pat.length && pat[p] === '*') {
      star = p++;
      mark = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.length && pat[p] === '*') p++;
  return p === pat.length;
}

/**
 * match.c match_pattern_list: 1 if some pattern of the comma-separated list
 * matches, -1 if a negated one (`!pattern`) does (negation wins), else 0.
 */
export function matchPatternList(s: string, list: string): -1 | 0 | 1 {
  let positive = false;
  for (const item of list.split(',')) {
    const negated = item.startsWith('!');
    const sub = negated ? item.slice(1) : item;
    if (sub.length > MAX_SUBPATTERN) return 0;
    if (matchPattern(s, sub)) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

export type ProviderCheck = { ok: true; path: string } | { ok: false; message: string };

export class ProviderAllowList {
  constructor(readonly patterns: string = DEFAULT_ALLOWED_PROVIDERS) {}

  /**
   * The canonical path of `provider` if the list allows it (ssh-agent.c
   * process_add_smartcard_key: realpath, then match_pattern_list == 1), or why
   * not, as a line for the debug log.
   */
  async check(provider: string): Promise<ProviderCheck> {
    let canonical: string;
    try {
      canonical = await fs.promises.realpath(provider);
    } catch (e) {
      return {
        ok: false,
        message: `provider "${escapeText(provider)}": realpath: ${escapeText(errorMessage(e))}`,
      };
    }
    if (matchPatternList(canonical, this.patterns) !== 1)
      return {
        ok: false,
        message: `provider "${escapeText(canonical)}" is not allowed by the allow-list (-P "${escapeText(this.patterns)}")`,
      };
    return { ok: true, path: canonical };
  }
}
