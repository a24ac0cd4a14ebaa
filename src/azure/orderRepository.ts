/**
 * Orders in Cosmos DB (container `orders`, pk `/id`). Consumers never read-modify-replace: each
 * change is a patch of its own paths, guarded by a `from c where ...` condition so duplicates and
 * late redeliveries are no-ops (412). Conditions use lower-case names and values only.
 */
import type { Container, PatchOperation } from '@azure/cosmos';
import type { NotificationKind, OrderDocument, TimelineEntry } from '../domain/order';
import { ACTIVE_STATES, ALL_DONE, statusReasonAfter } from '../domain/orderState';
import type { CallOptions, OrderFilter, OrderPage, OrderStore, StateTransition, StatusTransition } from '../services/ports';
import { SERVICES, type ServiceName } from '../topology';
import { container } from './clients';
import { conditionLiteral, fetchPage, isConflict, isNotFound, isPreconditionFailed, stripSystemProperties } from './cosmosErrors';

/** `(c.status.billing = 'pending' or c.status.billing = 'processing')` */
export function anyOf(field: string, values: readonly string[]): string {
  if (values.length === 0) throw new Error(`no values for ${field}`);
  return `(${values.map((v) => `${field} = '${conditionLiteral(v)}'`).join(' or ')})`;
}

export function statusCondition(change: Pick<StatusTransition, 'service' | 'from' | 'whenState' | 'whenTimelineLength' | 'completes'>): string {
  const parts = [anyOf(`c.status.${conditionLiteral(change.service)}`, change.from)];
  if (change.whenState) parts.push(anyOf('c.state', change.whenState));
  if (change.whenTimelineLength !== undefined) parts.push(timelineLengthIs(change.whenTimelineLength));
  if (change.completes) {
    parts.push(anyOf('c.state', ACTIVE_STATES));
    for (const other of SERVICES) if (other !== change.service) parts.push(anyOf(`c.status.${other}`, ALL_DONE[other]));
  }
  return `from c where ${parts.join(' and ')}`;
}

export function stateCondition(change: Pick<StateTransition, 'from' | 'when' | 'whenTimelineLength'>): string {
  const parts = [anyOf('c.state', change.from)];
  for (const service of SERVICES) {
    const allowed = change.when?.[service];
    if (allowed) parts.push(anyOf(`c.status.${service}`, allowed));
  }
  if (change.whenTimelineLength !== undefined) parts.push(timelineLengthIs(change.whenTimelineLength));
  return `from c where ${parts.join(' and ')}`;
}

function timelineLengthIs(length: number): string {
  if (!Number.isSafeInteger(length) || length < 0) throw new Error(`not a timeline length: ${length}`);
  return `ARRAY_LENGTH(c.timeline) = ${length}`;
}

function timelineOp(entry: TimelineEntry): PatchOperation {
  // JSON has no undefined; dropping them keeps documents tidy.
  return { op: 'add', path: '/timeline/-', value: JSON.parse(JSON.stringify(entry)) };
}

function noticeOps(kind: NotificationKind, at: string): PatchOperation[] {
  return [
    { op: 'set', path: `/notified/${kind}`, value: true },
    { op: 'add', path: '/notifications/-', value: { kind, at } },
  ];
}

export class CosmosOrderRepository implements OrderStore {
  constructor(private readonly orders: Container = container('orders')) {}

  async create(order: OrderDocument, options: CallOptions = {}): Promise<{ created: boolean; order: OrderDocument }> {
    try {
      const { resource } = await this.orders.items.create<OrderDocument>(order, { abortSignal: options.signal });
      return { created: true, order: stripSystemProperties(resource ?? order) };
    } catch (err) {
      if (!isConflict(err)) throw err;
      const existing = await this.get(order.id, options);
      if (!existing) throw err;
      return { created: false, order: existing };
    }
  }

  async get(id: string, options: CallOptions = {}): Promise<OrderDocument | undefined> {
    try {
      const { resource } = await this.orders.item(id, id).read<OrderDocument>({ abortSignal: options.signal });
      return resource ? stripSystemProperties(resource) : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async conditionalPatch(id: string, condition: string, operations: PatchOperation[]): Promise<OrderDocument | undefined> {
    try {
      const { resource } = await this.orders.item(id, id).patch<OrderDocument>({ condition, operations });
      return resource ? stripSystemProperties(resource) : undefined;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * A notice rides on the transition only while the order does not record it yet: the patch that
   * carries it also requires its `notified` flag false. Should that alone fail (a redelivery
   * recorded it meanwhile), the transition is made without it, so the notice is on the order once.
   */
  async transitionStatus(id: string, change: StatusTransition): Promise<OrderDocument | undefined> {
    if (!change.notice) return this.patchStatus(id, change);
    const kind = conditionLiteral(change.notice.kind);
    const condition = `${statusCondition(change)} and c.notified.${kind} = false`;
    return (await this.patchStatus(id, change, condition)) ?? this.patchStatus(id, { ...change, notice: undefined });
  }

  private patchStatus(id: string, change: StatusTransition, condition = statusCondition(change)): Promise<OrderDocument | undefined> {
    const now = new Date().toISOString();
    const ops: PatchOperation[] = [
      { op: 'set', path: `/status/${change.service}`, value: change.to },
      { op: 'set', path: '/updatedAt', value: now },
    ];
    const reason = statusReasonAfter(change);
    if (reason !== undefined) ops.push({ op: 'set', path: `/statusReason/${change.service}`, value: reason });
    if (change.countBillingAttempt) ops.push({ op: 'incr', path: '/billingAttempts', value: 1 });
    if (change.setState !== undefined) ops.push({ op: 'set', path: '/state', value: change.setState });
    if (change.published) ops.push({ op: 'set', path: '/published', value: true });
    if (change.payment?.charged !== undefined) ops.push({ op: 'set', path: '/payment/charged', value: change.payment.charged });
    if (change.payment?.refunded !== undefined) ops.push({ op: 'set', path: '/payment/refunded', value: change.payment.refunded });
    if (change.notice) ops.push(...noticeOps(change.notice.kind, change.notice.at));
    if (change.timeline) ops.push(timelineOp(change.timeline));
    if (change.completes) ops.push({ op: 'set', path: '/state', value: 'completed' }, timelineOp(change.completes));
    if (change.stockHeldBy) ops.push({ op: 'set', path: '/stockHeldBy', value: change.stockHeldBy });
    return this.conditionalPatch(id, condition, ops);
  }

  transitionState(id: string, change: StateTransition): Promise<OrderDocument | undefined> {
    const ops: PatchOperation[] = [
      { op: 'set', path: '/state', value: change.to },
      { op: 'set', path: '/updatedAt', value: new Date().toISOString() },
    ];
    if (change.timeline) ops.push(timelineOp(change.timeline));
    return this.conditionalPatch(id, stateCondition(change), ops);
  }

  async appendTimeline(id: string, entry: TimelineEntry, options: { whenTimelineLength?: number } = {}): Promise<boolean> {
    const { whenTimelineLength: length } = options;
    // An entry is a change of the order like any other: support reads "Updated" as its latest.
    const ops: PatchOperation[] = [timelineOp(entry), { op: 'set', path: '/updatedAt', value: new Date().toISOString() }];
    if (length === undefined) {
      await this.orders.item(id, id).patch(ops);
      return true;
    }
    return (await this.conditionalPatch(id, `from c where ${timelineLengthIs(length)}`, ops)) !== undefined;
  }

  async recordPayment(id: string, field: 'charged' | 'refunded', amount: number): Promise<void> {
    await this.orders.item(id, id).patch([
      { op: 'set', path: `/payment/${field}`, value: amount },
      { op: 'set', path: '/updatedAt', value: new Date().toISOString() },
    ]);
  }

  async recordNotification(id: string, kind: NotificationKind, at: string): Promise<boolean> {
    const updated = await this.conditionalPatch(id, `from c where c.notified.${conditionLiteral(kind)} = false`, [
      ...noticeOps(kind, at),
      { op: 'set', path: '/updatedAt', value: at },
    ]);
    return updated !== undefined;
  }

  async list(filter: OrderFilter, page: { pageSize: number; continuationToken?: string }, options: CallOptions = {}): Promise<OrderPage> {
    const where: string[] = [];
    const parameters: { name: string; value: string }[] = [];
    if (filter.state) {
      where.push('c.state = @state');
      parameters.push({ name: '@state', value: filter.state });
    }
    if (filter.customerId) {
      where.push('c.customerId = @customerId');
      parameters.push({ name: '@customerId', value: filter.customerId });
    }
    for (const service of SERVICES as readonly ServiceName[]) {
      const status = filter.status?.[service];
      if (status) {
        where.push(`c.status.${service} = @${service}`);
        parameters.push({ name: `@${service}`, value: status });
      }
    }
    if (filter.updatedBefore) {
      where.push('c.updatedAt < @updatedBefore');
      parameters.push({ name: '@updatedBefore', value: filter.updatedBefore });
    }
    const query = `SELECT * FROM c${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY c.createdAt DESC`;
    const { items, continuationToken } = await fetchPage<OrderDocument>(this.orders.items, { query, parameters }, page, options);
    return { orders: items, ...(continuationToken ? { continuationToken } : {}) };
  }
}
