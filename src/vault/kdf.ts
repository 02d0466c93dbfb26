// Passphrase -> vault keys, with argon2id. The parameters live in the vault
// header so they can be raised later without breaking old vaults.
import crypto = require('node:crypto');

export interface KdfParams {
  /** argon2 memory cost in KiB. */
  memoryKiB: number;
  /** argon2 time cost (passes over memory). */
  time: number;
  parallelism: number;
}

/**
 * 64 MiB, t=3, p=1: the RFC 9106 "second recommended" memory and passes.
 * Measured on the 2-core dev machine: about 0.3 s per derivation (the
 * requirement is < 2 s); test/vault-kdf.test.ts logs the figure.
 */
export const DEFAULT_KDF: Readonly<KdfParams> = Object.freeze({
  memoryKiB: 65536,
  time: 3,
  parallelism: 1,
});

/** Accepted ranges. The upper bounds stop a damaged header from asking for absurd work. */
export const KDF_LIMITS = {
  memoryKiB: { min: 1024, max: 4 * 1024 * 1024 }, // 1 MiB .. 4 GiB
  time: { min: 1, max: 100 },
  parallelism: { min: 1, max: 16 },
} as const;

/**
 * The most work one derivation may take, memory × passes (KiB): 4 GiB once,
 * 1 GiB four times, 21 times the default; a few seconds on a small machine.
 * A planted header (4 GiB × 100 passes is within the ranges) would otherwise
 * make `ssh-add -X` run for hours, with the agent's event loop waiting on it.
 */
export const KDF_MAX_WORK_KIB = 4 * 1024 * 1024;

/** Returns why the parameters are unacceptable, or undefined when they are fine. */
export function kdfParamsProblem(p: KdfParams): string | undefined {
  for (const name of ['memoryKiB', 'time', 'parallelism'] as const) {
    const v = p[name];
    const { min, max } = KDF_LIMITS[name];
    if (!Number.isInteger(v) || v < min || v > max)
      return `KDF ${name} must be an integer in ${min}..${max}, not ${v}`;
  }
  if (p.memoryKiB < 8 * p.parallelism) return 'KDF memory must be at least 8 KiB per lane';
  if (p.memoryKiB * p.time > KDF_MAX_WORK_KIB)
    return (
      `KDF cost ${p.memoryKiB} KiB x ${p.time} passes is more than tsagent derives ` +
      `(memory x passes at most ${KDF_MAX_WORK_KIB} KiB, e.g. 4 GiB once or 1 GiB 4 times)`
    );
  return undefined;
}

export const SALT_LENGTH = 16;
export const KEY_CHECK_LENGTH = 16;

/** What a passphrase unlocks: the AES key, plus a check value that tells a wrong passphrase apart. */
export interface VaultKey {
  kdf: KdfParams;
  salt: Buffer;
  /** AES-256-GCM key for the payload. */
  encKey: Buffer;
  /** Stored in the header; equal only when the passphrase (and salt/params) are right. */
  keyCheck: Buffer;
}

/** Raw argon2id output (32 bytes). */
export async function argon2id(passphrase: Buffer, salt: Buffer, p: KdfParams): Promise<Buffer> {
  const problem = kdfParamsProblem(p);
  if (problem) throw new RangeError(problem);
  // Lazy: the native module costs load time that commands without a vault don't need.
  const argon2 = require('argon2') as typeof import('argon2');
  return argon2.hash(passphrase, {
    type: argon2.argon2id,
    raw: true,
    salt,
    memoryCost: p.memoryKiB,
    timeCost: p.time,
    parallelism: p.parallelism,
    hashLength: 32,
  });
}

/**
 * Derive the vault key. Two independent subkeys come out of one argon2 run
 * (HKDF-expand), so publishing the key check value reveals nothing about encKey.
 */
export async function deriveVaultKey(
  passphrase: Buffer,
  kdf: KdfParams,
  salt: Buffer = crypto.randomBytes(SALT_LENGTH),
): Promise<VaultKey> {
  const master = await argon2id(passphrase, salt, kdf);
  try {
    const expand = (info: string, len: number) =>
      Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), info, len));
    return {
      kdf: { ...kdf },
      salt: Buffer.from(salt),
      encKey: expand('tsagent vault v1 aes-256-gcm key', 32),
      keyCheck: expand('tsagent vault v1 key check', KEY_CHECK_LENGTH),
    };
  } finally {
    master.fill(0);
  }
}

/** Overwrite the secret parts (as far as Node lets us) once the key is no longer needed. */
export function wipeVaultKey(key: VaultKey): void {
  key.encKey.fill(0);
}
