import { Cron } from 'croner';

/**
 * A parsed cron schedule (croner does the parsing and the calendar arithmetic, time zones included).
 *
 * DST: a wall-clock time skipped in spring (02:30 on the day clocks go 02:00 → 03:00) runs once, at the
 * first valid time after it (03:00); a time that occurs twice in autumn runs once, at its first occurrence.
 * Schedules that fire every hour or more often fire once per real hour, so the repeated hour gets its run.
 * The scheduler asks for the next time strictly after the last scheduled one, so no time runs twice.
 */
export interface Schedule {
  readonly expression: string;
  /** IANA time zone, or undefined for the machine's. */
  readonly timezone: string | undefined;
  /** The first scheduled time strictly after `after`, or undefined if there is none. */
  next(after: Date): Date | undefined;
}

/**
 * Parse `expression` (5 fields, or 6 with seconds first; or `@daily`-style nicknames) in `timezone`.
 * @throws Error with croner's reason when the expression or the zone is invalid, or when no date matches.
 */
export function parseSchedule(expression: string, timezone?: string): Schedule {
  const expr = expression.trim();
  if (!expr.startsWith('@')) {
    const fields = expr.split(/\s+/).length;
    if (fields !== 5 && fields !== 6) throw new Error(`"${expr}" has ${fields} fields; a cron expression has 5, or 6 with seconds first`);
  }
  let cron: Cron;
  try {
    cron = new Cron(expr, { paused: true, ...(timezone ? { timezone } : {}) });
  } catch (err) {
    throw new Error(`invalid cron expression "${expr}": ${cleanCronMessage(err)}`);
  }
  // croner checks the zone only when it computes a time.
  let first: Date | null;
  try {
    first = cron.nextRun(new Date());
  } catch (err) {
    throw new Error(`invalid time zone "${timezone}": ${cleanCronMessage(err)}`);
  }
  // croner looks centuries ahead: nothing found means no date has it, and the task would silently never run.
  if (!first) throw new Error(`"${expr}" matches no date (a day the month never has, such as 30 February?), so it would never run`);
  return {
    expression: expr,
    timezone,
    next(after: Date): Date | undefined {
      return cron.nextRun(after) ?? undefined;
    },
  };
}

function cleanCronMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^Cron(Pattern|Date)?:\s*/i, '');
}

/** "in 3 s", "at 2025-01-02 02:00:00 Europe/Paris": a schedule's next time for people. */
export function describeNext(date: Date | undefined, timezone: string | undefined): string {
  if (!date) return 'never';
  const local = date.toLocaleString('sv-SE', { ...(timezone ? { timeZone: timezone } : {}), hour12: false });
  return `${local}${timezone ? ` ${timezone}` : ''}`;
}
