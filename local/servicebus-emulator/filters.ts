/** Subscription rules (SQL and correlation filters) compiled to predicates over a stored message. */
import type { SubscriptionRule } from '../../src/topology';
import { compileSqlFilter, type FilterInput, type Predicate } from './sql-filter';
import type { MessageContent } from './wire';

function idString(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Buffer.isBuffer(v)) return v.toString('hex');
  return String(v);
}

/** What a filter sees of a message: system properties (lower-case, no `sys.`) and application properties. */
export function filterInput(content: MessageContent, extra: { sequenceNumber?: number; enqueuedTime?: number } = {}): FilterInput {
  const p = content.properties;
  return {
    system: {
      messageid: idString(p.message_id),
      correlationid: idString(p.correlation_id),
      label: p.subject,
      subject: p.subject,
      contenttype: p.content_type,
      to: p.to,
      replyto: p.reply_to,
      sessionid: p.group_id,
      replytosessionid: p.reply_to_group_id,
      sequencenumber: extra.sequenceNumber,
      enqueuedtimeutc: extra.enqueuedTime !== undefined ? new Date(extra.enqueuedTime) : undefined,
      size: content.size,
      timetolive: content.header.ttl,
    },
    user: content.applicationProperties,
  };
}

function correlationPredicate(f: NonNullable<SubscriptionRule['correlationFilter']>): Predicate {
  const system: [string, unknown][] = [];
  if (f.correlationId !== undefined) system.push(['correlationid', f.correlationId]);
  if (f.messageId !== undefined) system.push(['messageid', f.messageId]);
  if (f.label !== undefined) system.push(['label', f.label]);
  if (f.contentType !== undefined) system.push(['contenttype', f.contentType]);
  const extra = f as Record<string, unknown>;
  for (const [key, field] of [['to', 'to'], ['replyto', 'replyTo'], ['sessionid', 'sessionId'], ['replytosessionid', 'replyToSessionId']] as const) {
    if (extra[field] !== undefined) system.push([key, extra[field]]);
  }
  const user = Object.entries(f.properties ?? {});
  return (m) =>
    system.every(([k, v]) => m.system[k] === v) &&
    user.every(([k, v]) => {
      const actual = m.user?.[k];
      return actual === v;
    });
}

/** A subscription matches when any of its rules matches; no rules = the default rule (`1=1`). */
export function compileRules(rules: SubscriptionRule[]): Predicate {
  if (rules.length === 0) return () => true;
  const predicates = rules.map((rule) => {
    if (rule.sqlFilter !== undefined) return compileSqlFilter(rule.sqlFilter);
    if (rule.correlationFilter !== undefined) return correlationPredicate(rule.correlationFilter);
    return () => true;
  });
  return (m) => predicates.some((p) => p(m));
}
