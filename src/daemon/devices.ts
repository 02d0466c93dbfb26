// The agent's device keys as the command line configures them: the -P
// allow-list, -O allow-remote-pkcs11 and -O no-restrict-websafe, the touch
// notice for security keys, and dropping a token's keys when its helper dies.

import { DeviceKey } from '../agent/device-key';
import { DeviceKeys } from '../agent/device-keys';
import type { Keyring } from '../agent/keyring';
import { startNotice } from '../agent/notify';
import { ProviderAllowList } from '../agent/provider-allowlist';
import type { ConnectionContext, Logger } from '../agent/server';
import { fingerprint } from '../ssh/fingerprint';
import { SK_ECDSA, skPlainType } from '../ssh/sk-key';
import type { DaemonConfig } from './config';

/** ssh-agent.c's notice, with what to do: sshkey_type() names the key as ED25519-SK / ECDSA-SK. */
export function touchNotice(key: DeviceKey, hash: 'sha256' | 'md5'): string {
  const type = skPlainType(key.keyType) === SK_ECDSA ? 'ECDSA-SK' : 'ED25519-SK';
  return `Confirm user presence for key ${type} ${fingerprint(key.publicBlob, hash)}: touch your security key`;
}

export function agentDevices(
  cfg: DaemonConfig,
  keyring: Keyring<ConnectionContext>,
  log: Logger,
  env: NodeJS.ProcessEnv,
): DeviceKeys {
  return new DeviceKeys({
    allowList: new ProviderAllowList(cfg.allowedProviders),
    allowRemoteProviders: cfg.allowRemoteProviders,
    restrictWebsafe: cfg.restrictWebsafe,
    sk: { env },
    pkcs11: { env },
    onTouch: (key) => {
      const notice = touchNotice(key, cfg.fingerprintHash);
      log(notice);
      return startNotice(notice, env);
    },
    onTokenGone: (blobs) => {
      log(`a PKCS#11 helper died: its ${blobs.length} keys are removed`);
      for (const blob of blobs) keyring.remove(blob);
    },
  });
}
