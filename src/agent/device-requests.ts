// The requests that bring device keys into the agent, served on top of the
// served agent (the keyring) and DeviceKeys: ADD_IDENTITY of a security key
// (ssh-agent.c process_add_identity with sk-provider), ADD_SMARTCARD_KEY
// (_CONSTRAINED) and REMOVE_SMARTCARD_KEY (process_add/remove_smartcard_key).

import { escapeText } from '../ssh/escape';
import { DeviceKeys } from './device-keys';
import type { Request } from './protocol';
import type { AgentService } from './service';
import type { BoundConnection } from './session-bind';

export type DeviceRequest = Extract<
  Request,
  { type: 'add-sk' | 'add-smartcard' | 'remove-smartcard' }
>;

type Ctx = BoundConnection & { id: number };

/** Serves one device request; true for SUCCESS. Every refusal is logged (escaped). */
export async function serveDeviceRequest<C extends Ctx>(
  req: DeviceRequest,
  agent: AgentService<C>,
  devices: DeviceKeys,
  ctx: C,
  log: (msg: string) => void,
): Promise<boolean> {
  const say = (msg: string) => log(`connection ${ctx.id}: ${msg}`);
  if (req.type === 'add-sk') {
    // The sk-provider is checked (allow-list, forwarded rule) before the key is kept.
    const dev = await devices.securityKey(req.key, req.constraints.skProvider, ctx.bindAttempted);
    const added = dev.ok ? agent.add(dev.value, req.comment, req.constraints, { ctx }) : dev;
    say(added.ok ? `added ${req.key.keyType} security key` : `add refused: ${added.reason}`);
    return added.ok;
  }
  if (agent.locked) {
    if (req.type === 'add-smartcard') req.pin.fill(0);
    say(`PKCS#11 ${req.type === 'add-smartcard' ? 'add' : 'remove'} refused: agent is locked`);
    return false;
  }
  if (req.type === 'remove-smartcard') {
    const res = await devices.removeToken(req.provider);
    if (!res.ok) {
      say(`PKCS#11 remove refused: ${res.reason}`);
      return false;
    }
    // process_remove_smartcard_key drops them all, whichever this connection may see.
    const local = { ...ctx, binds: [], bindAttempted: false, bindFailed: false, bindAttempts: 0 };
    for (const blob of res.value) agent.remove(blob, local);
    return true;
  }
  const ids = await devices.addToken(
    req.provider,
    req.pin,
    req.constraints.associatedCerts,
    ctx.bindAttempted,
  );
  if (!ids.ok) {
    say(`PKCS#11 add refused: ${ids.reason}`);
    return false;
  }
  // Every key of the token gets the constraints (-c, -t, -h), as OpenSSH 9.6 does.
  let added = 0;
  for (const id of ids.value) {
    const res = agent.add(id.key, id.comment, req.constraints, { ctx });
    if (res.ok) added++;
    else say(`token key not added: ${res.reason}`);
  }
  const canonical = ids.value[0].key.provider;
  say(`added ${added} keys from PKCS#11 provider "${escapeText(canonical)}"`);
  // Nothing kept: do not leave the token logged in for nothing.
  if (added === 0) await devices.removeToken(canonical);
  return added > 0;
}
