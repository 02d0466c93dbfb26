// Which PKCS#11 providers and FIDO middlewares the agent may load: OpenSSH's
// `ssh-agent -P` (ssh-agent.c: realpath of the provider, then
// match_pattern_list against the allow-list; default DEFAULT_ALLOWED_PROVIDERS
// "/usr/lib*/*,/usr/local/lib*/*"). A library loaded into a helper runs code
// as the user, so a path from a client is only as trusted as this list.

import fs = require('node:fs');
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';

export const DEFAULT_ALLOWED_PROVIDERS = '/usr/lib*/*,/usr/local/lib*/*';
// OpenSSH's match_pattern / match_pattern_list, the one matcher of the tree.
export { matchPattern, matchPatternList } from '../ssh/pattern';
import { matchPatternList } from '../ssh/pattern';

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
