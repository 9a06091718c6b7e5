/**
 * A retention policy, filter or grouping that cannot be used as given: a malformed or
 * negative count or duration, an unknown grouping field, a policy without a rule.
 * The message names the option (flag or config key) and the value. The CLI maps it to
 * exit code 2 (usage error).
 */
export class PolicyError extends Error {
  /** The option concerned (`--keep-daily`, `forget.keepWithin`), when there is one. */
  readonly option: string | undefined;
  constructor(message: string, option?: string) {
    super(message);
    this.name = 'PolicyError';
    this.option = option;
  }
}
