// `tsagent vault set NAME …`: change a key's defaults (confirm, lifetime,
// destinations, forwarded use, approval window), which the agent applies.
import { errorMessage } from '../ssh/error';
import { UsageError } from './errors';
import { parseLifetime as parseAgentLifetime } from './options';
import { Context, describeIdentity, parseLifetime, unlock } from './vault-commands';

/** `--confirm-window LIFE`: seconds or an ssh-style time, 0 = ask every time. */
function parseConfirmWindow(value: string): number {
  const seconds = parseAgentLifetime(value);
  if (seconds === null)
    throw new UsageError(
      `--confirm-window needs seconds or a time like 5m (0 = ask every time); not "${value}"`,
    );
  return seconds;
}

export async function cmdSet(
  ctx: Context,
  name: string,
  opts: {
    confirm?: boolean;
    lifetime?: string;
    allow?: string[];
    clearAllow?: boolean;
    confirmForwarded?: boolean;
    localOnly?: boolean;
    /** A time, or false for --no-confirm-window (the agent's window again). */
    confirmWindow?: string | false;
  },
) {
  if (
    opts.confirmWindow === undefined &&
    opts.confirm === undefined &&
    opts.lifetime === undefined &&
    opts.allow === undefined &&
    !opts.clearAllow &&
    opts.confirmForwarded === undefined &&
    opts.localOnly === undefined
  )
    throw new UsageError(
      'nothing to set: give --confirm, --no-confirm, --lifetime SECONDS|none, --allow HOP, --clear-allow, --[no-]confirm-forwarded, --[no-]local-only or --[no-]confirm-window',
    );
  const confirmWindow =
    opts.confirmWindow === undefined
      ? undefined
      : opts.confirmWindow === false
        ? null
        : parseConfirmWindow(opts.confirmWindow);
  const lifetime = opts.lifetime === undefined ? undefined : parseLifetime(opts.lifetime);
  if (opts.allow) checkAllow(ctx, opts.allow);
  const vault = await unlock(ctx);
  try {
    // --clear-allow with --allow replaces the list; alone, it empties it.
    const allow = opts.clearAllow && !opts.allow?.length ? null : opts.allow;
    ctx.note(
      describeIdentity(
        vault.update(name, {
          confirm: opts.confirm,
          lifetime,
          allow,
          clearAllow: opts.clearAllow,
          confirmForwarded: opts.confirmForwarded,
          localOnly: opts.localOnly,
          confirmWindow,
        }),
      ),
    );
  } finally {
    vault.lock();
  }
}

/** Check --allow specs; warn about hosts the agent will not find in known_hosts. */
function checkAllow(ctx: Context, specs: string[]): void {
  const { destinationsFromSpecs } =
    require('../agent/destination') as typeof import('../agent/destination');
  const { readKnownHosts, keysForHost } =
    require('../agent/known-hosts') as typeof import('../agent/known-hosts');
  const known = readKnownHosts();
  try {
    const unknown = new Set<string>();
    const lookup = (h: string) =>
      keysForHost(known, h).map((k) => ({ key: k.keyBlob, isCA: k.isCA }));
    for (const d of destinationsFromSpecs(specs, lookup))
      for (const hop of [d.from, d.to])
        if (hop.hostname && hop.keys.length === 0) unknown.add(hop.hostname);
    for (const h of unknown)
      ctx.note(
        `warning: ${h} is not in your known_hosts: the key cannot be used there until you have connected to it once`,
      );
  } catch (e) {
    throw new UsageError(`--allow: ${errorMessage(e)}`);
  }
}
