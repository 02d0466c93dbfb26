// The changes the agent refused from forwarded connections since it started,
// for `tsagent status`: how many, and the latest few with the hop chain each
// came through (the audit log keeps them all).

import type { AuditRecord } from '../agent/audit';
import type { RefusedChange } from './control-protocol';

/** How many of the latest refusals status shows. */
export const RECENT_REFUSALS = 10;

export class RefusedChanges {
  private total = 0;
  private readonly recent: RefusedChange[] = [];

  /** Note a refusal, from its audit record. */
  add(rec: AuditRecord): void {
    this.total++;
    this.recent.push({ time: rec.time, request: rec.request ?? '', hops: [...rec.hops] });
    if (this.recent.length > RECENT_REFUSALS) this.recent.shift();
  }

  /** The count since start, and the latest refusals, oldest first. */
  view(): { count: number; recent: RefusedChange[] } {
    return { count: this.total, recent: this.recent.map((r) => ({ ...r, hops: [...r.hops] })) };
  }
}
