// One way to turn anything thrown into a message: `catch (e)` gives `unknown`.

/** The message of an Error, or the thrown value as text. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return typeof e === 'string' ? e : String(e);
}
