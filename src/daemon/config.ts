// The agent's settings: what the command line asks for, completed from the
// environment and the defaults into the configuration the agent runs with.

import fs = require('node:fs');
import path = require('node:path');
import { resolveVaultPath } from '../vault/paths';
import { AgentPaths, auditLogPath } from './paths';

/** What the agent's command line chose (parsed by src/cli/options.ts). */
export interface AgentSettings {
  bindAddress?: string; // -a
  lifetime?: number; // -t, seconds
  fingerprintHash: 'sha256' | 'md5'; // -E
  newAgent: boolean; // --new
  confirmForwarded: boolean; // --confirm-forwarded
  allowForwardedChanges?: boolean; // --allow-forwarded-changes
  vault?: string; // --vault PATH
  auditLog?: string; // --audit-log PATH
  lockAfter?: number; // --lock-after LIFE, seconds
  confirmWindow?: number; // --confirm-window LIFE, seconds
  noUnlockPrompt?: boolean; // --no-unlock-prompt
  maxConnections?: number; // --max-connections N
  idleTimeout?: number; // --idle-timeout LIFE, seconds
  strict: boolean; // --strict
  allowedProviders?: string; // -P
  options?: string[]; // -O
}

export interface DaemonConfig {
  paths: AgentPaths;
  lifetime?: number;
  fingerprintHash: 'sha256' | 'md5';
  confirmForwarded?: boolean;
  /** Serve changes from forwarded connections, as OpenSSH's agent does. */
  allowForwardedChanges?: boolean;
  /** Where sign requests are logged (JSON lines); none if unset. */
  auditLog?: string;
  /** The vault file, if the agent serves one. */
  vault?: string;
  /** Lock after this many idle seconds. */
  lockAfter?: number;
  /** After a confirm "yes", the same use is not asked again for this many seconds (0 = ask every time). */
  confirmWindow: number;
  /** A locked vault agent asks for the vault passphrase when a local request needs keys. */
  unlockPrompt: boolean;
  maxConnections: number;
  /** Seconds a connection may stay silent; 0 = for ever. */
  idleTimeout: number;
  /** Refuse to start if a process protection step fails. */
  strict: boolean;
  /** -P: where PKCS#11 providers and FIDO middlewares may be loaded from (undefined: OpenSSH's default). */
  allowedProviders?: string;
  /** -O allow-remote-pkcs11: forwarded connections may name providers. */
  allowRemoteProviders: boolean;
  /** Not -O no-restrict-websafe: web-origin security keys sign only SSH data. */
  restrictWebsafe: boolean;
}

/** Defaults for the connection limits (documented in tsagent(1)). */
export const LIMITS = { maxConnections: 256, idleTimeout: 3600, messageTimeoutMs: 10_000 } as const;

/** The agent's settings from its command line and environment. */
export function daemonConfig(
  o: AgentSettings,
  paths: AgentPaths,
  env: NodeJS.ProcessEnv = process.env,
): DaemonConfig {
  const vault = resolveVaultPath(o.vault, env);
  // The audit log sits next to the vault, once there is a vault directory.
  const chosen = o.auditLog || env.TSAGENT_AUDIT_LOG;
  const auditLog =
    chosen || fs.existsSync(path.dirname(vault)) ? auditLogPath(o.auditLog, env, vault) : undefined;
  return {
    paths,
    lifetime: o.lifetime,
    fingerprintHash: o.fingerprintHash,
    confirmForwarded: o.confirmForwarded,
    allowForwardedChanges: o.allowForwardedChanges,
    auditLog,
    vault,
    lockAfter: o.lockAfter,
    confirmWindow: o.confirmWindow ?? 0,
    unlockPrompt: !o.noUnlockPrompt,
    maxConnections: o.maxConnections ?? LIMITS.maxConnections,
    idleTimeout: o.idleTimeout ?? LIMITS.idleTimeout,
    strict: o.strict,
    allowedProviders: o.allowedProviders,
    allowRemoteProviders: !!o.options?.includes('allow-remote-pkcs11'),
    restrictWebsafe: !o.options?.includes('no-restrict-websafe'),
  };
}
