// Where the vault lives. One resolver, used by `tsagent vault`, `tsagent add`
// and the agent alike, so they can never disagree about the file.
import os = require('node:os');
import path = require('node:path');

/** `$XDG_DATA_HOME/tsagent/vault`, else `~/.local/share/tsagent/vault`. */
export function defaultVaultPath(
  env: NodeJS.ProcessEnv = process.env,
  home = os.homedir(),
): string {
  // The XDG spec says to ignore a relative XDG_DATA_HOME.
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.local', 'share');
  return path.join(base, 'tsagent', 'vault');
}

/**
 * An explicit --vault path, else TSAGENT_VAULT, else the default. An empty
 * value counts as unset (`TSAGENT_VAULT=` is how a shell clears it).
 */
export function resolveVaultPath(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  home = os.homedir(),
): string {
  const chosen = explicit || env.TSAGENT_VAULT || defaultVaultPath(env, home);
  return path.resolve(chosen);
}
