// Every vault failure, with a code callers can tell apart without parsing messages.

export type VaultErrorCode =
  | 'WRONG_PASSPHRASE'
  | 'DAMAGED'
  | 'UNSUPPORTED'
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'PERMISSIONS'
  | 'WRITE_FAILED'
  | 'CHANGED'
  | 'INVALID';

/** Every vault failure; `code` tells callers which kind without parsing messages. */
export class VaultError extends Error {
  constructor(
    readonly code: VaultErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export const WRONG_PASSPHRASE_MESSAGE = 'wrong passphrase';
export const DAMAGED_MESSAGE = 'vault is damaged or was tampered with';

export const damaged = (detail: string) =>
  new VaultError('DAMAGED', `${DAMAGED_MESSAGE}: ${detail}`);
