// The cli's two errors. main.ts (and `tsagent vault`) print either one once,
// as `tsagent: MESSAGE`, and exit with its code.

/** Bad arguments: the usage is shown, exit code 2 (1 for the agent's own flags, as ssh-agent). */
export class UsageError extends Error {}

/** Anything else the user must fix (mismatched passphrases, no agent …): exit code 1 unless told. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
