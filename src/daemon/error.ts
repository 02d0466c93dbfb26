// The one error the daemon layer throws for something the user must fix (a
// socket that cannot be bound, a directory owned by someone else): the cli
// prints its message once, as `tsagent: MESSAGE`, and exits with exitCode.

export class DaemonError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
