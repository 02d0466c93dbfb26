// The keyring's confirm step with approval windows (issue 14, --confirm-window,
// and per key `tsagent vault set KEY --confirm-window`):
// a use covered by an open window is allowed without a prompt; a "yes" opens
// one. Prompts run one at a time, and each request looks at the windows only
// when its turn comes, so requests queued behind a "yes" ride on it.

import {
  ApprovalScope,
  ApprovalWindows,
  OpenApproval,
  approvalDestination,
} from '../agent/approvals';
import type { Confirmer, Entry, SignDetails } from '../agent/keyring';
import { processSession } from '../agent/process-session';
import type { ConnectionContext } from '../agent/server';

/** What the window of one use is keyed on, or null when no window may cover it. */
export function approvalScope(
  entry: Entry,
  ctx: ConnectionContext,
  details: SignDetails,
): ApprovalScope | null {
  // Without a readable session there is nothing to tie the approval to.
  const session = ctx.peer ? processSession(ctx.peer.pid) : undefined;
  if (session === undefined || !details.signed) return null;
  const last = ctx.binds[ctx.binds.length - 1];
  const destination = approvalDestination(
    details.signed,
    details.verified && last ? last.hostKey : undefined,
  );
  if (destination === null) return null;
  return { key: entry.key.publicBlob, session, forwarded: details.forwarded, destination };
}

export class WindowedConfirm {
  /** The approval each use rode on, for its audit record. */
  private readonly covered = new WeakMap<SignDetails, OpenApproval>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly windows: ApprovalWindows,
    private readonly ask: Confirmer<ConnectionContext>,
  ) {}

  readonly confirm: Confirmer<ConnectionContext> = (entry, ctx, details) => {
    const turn = this.queue.then(async () => {
      const scope = approvalScope(entry, ctx, details);
      const open = scope ? this.windows.use(scope, entry.confirmWindowMs) : undefined;
      if (open) {
        this.covered.set(details, open);
        return true;
      }
      const yes = await this.ask(entry, ctx, details);
      if (yes && scope) this.windows.approve(scope, entry.confirmWindowMs);
      return yes;
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  };

  /** The window a sign request was allowed by, if it did not prompt. */
  coveredBy(details: SignDetails | undefined): OpenApproval | undefined {
    return details ? this.covered.get(details) : undefined;
  }
}
