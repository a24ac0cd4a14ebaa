/**
 * Activities of the order monitor: read the order, requeue billing, look at a stuck consumer's
 * backlog, republish to it, and the monitor's own state changes. Each is idempotent, because the
 * durable engine runs an activity at least once.
 */
import * as df from 'durable-functions';
import type { ActivityHandler } from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { activityLogger, orderOrThrow, outageMarked } from '../src/bindings/orderActivity';
import {
  behindBacklog,
  MONITOR_ACTOR,
  REPUBLISH_REASON,
  TIMELINE,
  monitorPolicyFromSettings,
  monitorSnapshotOf,
  latestRequeue,
  republishedDetail,
  republishedMessageId,
  republishRecorded,
  requeueRecorded,
  sendInTheMaking,
  stuckRepublishNamed,
  targetedSends,
  type BacklogCheck,
  type MonitorSnapshot,
} from '../src/domain/monitorPolicy';
import type { OrderDocument } from '../src/domain/order';
import { IN_FLIGHT, requeueOverruledReason } from '../src/domain/orderState';
import { oldestWaitingMessage } from '../src/azure/subscriptionBacklog';
import { beginCompensationRun, markAttention, type RunStart } from '../src/services/compensationOutcome';
import { appDependencies } from '../src/services/dependencies';
import { markCompleted } from '../src/services/consumers';
import { CHANGED, onOrderAsRead } from '../src/services/orderAsRead';
import { republishMessageId, republishToService, sendNumber } from '../src/services/publishing';
import type { ServiceName } from '../src/topology';
import { ACTIVITY, STORE_OUTAGE_MARK, type CompensationStart, type OrderActivityInput } from '../orchestrators/names';

/**
 * Sends the order's event to one consumer again. The message number counts every targeted send
 * to that service so far, so each send gets a fresh messageId (duplicate detection would drop a
 * reused one), while a retry of a send whose record was lost reuses its number and is dropped. A
 * requeue and a stuck republish pass the number their entry named (none for a `requeued` entry
 * written before requeues named their message).
 */
async function sendAgain(order: OrderDocument, service: ServiceName, reason: string, number = targetedSends(order.timeline, service) + 1): Promise<string> {
  const { messageId } = await republishToService(order, service, number, reason);
  return messageId;
}

const loadMonitorPolicy: ActivityHandler = () => monitorPolicyFromSettings(process.env);

/** A read Cosmos DB did not serve fails with STORE_OUTAGE_MARK: the monitor waits that out; any other failure it does not. */
const readMonitorSnapshot: ActivityHandler = outageMarked(
  STORE_OUTAGE_MARK,
  'monitor-read-store-outage',
  async (_context: InvocationContext, input: OrderActivityInput): Promise<MonitorSnapshot | null> => {
    const order = await appDependencies().orders.get(input.orderId);
    return order ? monitorSnapshotOf(order) : null;
  },
);

interface RequeueInput extends OrderActivityInput {
  attempt: number;
  requestedBy?: string;
}

/**
 * Targeted republish to billing only, after marking the dead-lettered billing `pending` again.
 * Recorded once per requeue: the monitor's by its own count (`attempt`), a person's by the request
 * it answers (a `requeued` entry after the request clears it). The entry's number counts every
 * requeue billing had, whoever asked.
 */
const requeueBilling: ActivityHandler = async (input: RequeueInput, context: InvocationContext) => {
  const deps = appDependencies();
  const log = activityLogger(context, input);
  let order = await orderOrThrow(input.orderId);
  // Read as the monitor reads the order: its requeues counted, a person's request pending until done.
  const snapshot = monitorSnapshotOf(order);
  const recorded = input.requestedBy ? !snapshot.requeueRequestedBy : requeueRecorded(snapshot, input.attempt);
  // Since the monitor decided, compensation was asked for or another service failed for a
  // business reason: billing is about to be refunded, not retried (support may not ask for this
  // requeue now either). The monitor's next turn compensates. So for a requeue written before
  // whose message has not gone out: sent now, billing would charge what the run then refunds.
  const overruled = requeueOverruledReason(order);
  if (overruled) return { requeued: false, reason: overruled };
  if (!recorded) {
    const number = order.timeline.filter((e) => e.kind === TIMELINE.requeued).length + 1;
    // A retry of a person's step that finds another request pending carries out that one, in its name.
    const actor = input.requestedBy ? (snapshot.requeueRequestedBy ?? input.requestedBy) : MONITOR_ACTOR;
    // The entry names the message before it goes out: a send whose record is lost still counts,
    // and a later send (a request a retry of this step takes, say) gets an id of its own.
    const messageId = republishMessageId(order, 'billing', targetedSends(order.timeline, 'billing') + 1);
    const entry = { at: deps.now(), kind: TIMELINE.requeued, service: 'billing' as const, actor, detail: republishedDetail(number, messageId) };
    if (order.status.billing === 'deadlettered') {
      // Status first, then the message: a requeued delivery that fails again must find `pending`
      // to dead-letter from, never have its new dead-letter overwritten by this patch. Only onto
      // the order as read, as the entry names its message from it: a copy of this step that read
      // the order before its twin requeued, and writes once billing has dead-lettered again, would
      // name the twin's message, which duplicate detection drops.
      const updated = await deps.orders.transitionStatus(order.id, {
        service: 'billing',
        from: ['deadlettered'],
        to: 'pending',
        timeline: entry,
        whenTimelineLength: order.timeline.length,
      });
      if (!updated) return { requeued: false, reason: 'billing moved on, or the order changed since it was read' };
      order = updated;
    } else if (input.requestedBy && IN_FLIGHT.includes(order.status.billing)) {
      // Only onto the order as read, as the status patch above is conditional: a twin of this
      // activity that read the same pending request would otherwise record it carried out twice.
      // A write lost to any other change leaves the request pending for the monitor's next turn.
      const appended = await deps.orders.appendTimeline(order.id, entry, { whenTimelineLength: order.timeline.length });
      if (!appended) return { requeued: false, reason: 'the order changed since it was read' };
      order = { ...order, timeline: [...order.timeline, entry] };
    } else {
      return { requeued: false, reason: `billing is ${order.status.billing}` };
    }
  }
  // The requeue this step carries out is the latest written: its number, who asked, its message.
  const requeue = latestRequeue(order.timeline);
  const number = order.timeline.filter((e) => e.kind === TIMELINE.requeued).length;
  const actor = requeue?.actor ?? input.requestedBy ?? MONITOR_ACTOR;
  const reason = `${REPUBLISH_REASON.requeue} ${number}${actor === MONITOR_ACTOR ? '' : ` by ${actor}`}`;
  // Run once more after its send was written (the host died before the engine heard it finish): a
  // second send would be a message of its own, numbered past the first, taken by billing for nothing.
  const sent = recorded && order.timeline.some((e) => e.kind === TIMELINE.republished && e.service === 'billing' && e.reason === reason);
  if (sent) return { requeued: false, reason: `requeue ${number} already sent` };
  const named = sendNumber(order, 'billing', republishedMessageId(requeue?.detail));
  const messageId = await sendAgain(order, 'billing', reason, named);
  log.info('billing-requeued', { attempt: number, messageId, actor });
  return { requeued: true, messageId };
};

interface RepublishInput extends OrderActivityInput {
  service: ServiceName;
  attempt: number;
  reason: string;
}

/**
 * Targeted republish to a stuck consumer. Its `republishing` entry names the message before it goes
 * out, as a requeue's entry does: a send whose record is lost still counts, so the next send to the
 * service (a requeue of billing, say) gets an id of its own instead of one duplicate detection
 * drops, and an older message's dead-letter recorded meanwhile finds this one in play. The step run
 * once more sends the message its entry named, while that is still the send in the making.
 */
const republishToStuckService: ActivityHandler = async (input: RepublishInput, context: InvocationContext) => {
  const deps = appDependencies();
  const { service, attempt } = input;
  const reason = `${REPUBLISH_REASON.stuck} (attempt ${attempt}): ${input.reason}`;
  // Only onto the order as read, as the entry names its message from it: a twin of this step that
  // read the same order reads it again, finds the entry its twin wrote, and sends that message.
  const decided = await onOrderAsRead(await orderOrThrow(input.orderId), deps, `republish ${attempt} to ${service} was not written`, undefined, async (order) => {
    const status = order.status[service];
    if (!IN_FLIGHT.includes(status)) return { skip: `${service} is ${status}` };
    // The step run once more (the host died before the engine heard it finish) finds its send
    // recorded: sending again would be counted as the next step's and use up the republishes early.
    if (republishRecorded(monitorSnapshotOf(order), service, attempt)) return { skip: `republish ${attempt} to ${service} already sent` };
    // The message its entry named, while that is still the send in the making: not once a later
    // send was named (a person's requeue, say), nor once another send was recorded after the entry
    // (an earlier requeue's, sent late). Sent then, it would be in flight unseen by the dead-letter
    // sweep, which takes the highest number for the latest send and counts a named message never
    // recorded sent, with a send recorded after it, as never gone out. A fresh entry names a message past it.
    const naming = stuckRepublishNamed(order.timeline, service, attempt);
    const named = republishedMessageId(naming?.detail);
    const inTheMaking = naming !== undefined && naming === sendInTheMaking(order.timeline, service);
    if (named !== undefined && inTheMaking && sendNumber(order, service, named) === targetedSends(order.timeline, service)) return { order, messageId: named };
    const messageId = republishMessageId(order, service, targetedSends(order.timeline, service) + 1);
    const entry = { at: deps.now(), kind: TIMELINE.republishing, service, actor: MONITOR_ACTOR, reason, detail: republishedDetail(attempt, messageId) };
    const appended = await deps.orders.appendTimeline(order.id, entry, { whenTimelineLength: order.timeline.length });
    return appended ? { order: { ...order, timeline: [...order.timeline, entry] }, messageId } : CHANGED;
  });
  if (!decided) return { republished: false, reason: 'the order is gone' };
  if ('skip' in decided) return { republished: false, reason: decided.skip };
  const messageId = await sendAgain(decided.order, service, reason, sendNumber(decided.order, service, decided.messageId));
  activityLogger(context, input).info('stuck-service-republished', { service, attempt, messageId });
  return { republished: true, messageId };
};

interface BacklogInput extends OrderActivityInput {
  service: ServiceName;
  /** When the order's latest message to the service was sent, as the order stamps it. */
  sentAt: string;
}

/** Whether the service's subscription still holds the order's latest message to it, or older ones. */
const checkServiceBacklog: ActivityHandler = async (input: BacklogInput, context: InvocationContext): Promise<BacklogCheck> => {
  const oldest = await oldestWaitingMessage(input.service);
  const check: BacklogCheck = { waiting: behindBacklog(oldest, input.sentAt), ...(oldest ? { oldestEnqueuedAt: oldest.toISOString() } : {}) };
  activityLogger(context, input).info('service-backlog-checked', { service: input.service, sentAt: input.sentAt, ...check });
  return check;
};

const markOrderCompleted: ActivityHandler = async (input: OrderActivityInput, context: InvocationContext) => {
  // The same conditional patch the last consumer makes: whichever comes first wins, once.
  const completed = await markCompleted(input.orderId, { actor: MONITOR_ACTOR }, appDependencies(), activityLogger(context, input));
  return { completed };
};

const markOrderAttention: ActivityHandler = async (input: OrderActivityInput & { reason: string }, context: InvocationContext) =>
  markAttention(await orderOrThrow(input.orderId), input.reason, appDependencies(), activityLogger(context, input));

/** Moves the order to `compensating` and counts the run (`beginCompensationRun`); null when the order finished meanwhile. */
const beginCompensation: ActivityHandler = async (input: OrderActivityInput & RunStart, context: InvocationContext): Promise<CompensationStart | null> =>
  beginCompensationRun(await orderOrThrow(input.orderId), input, appDependencies(), activityLogger(context, input));

df.app.activity(ACTIVITY.loadMonitorPolicy, { handler: loadMonitorPolicy });
df.app.activity(ACTIVITY.readMonitorSnapshot, { handler: readMonitorSnapshot });
df.app.activity(ACTIVITY.requeueBilling, { handler: requeueBilling });
df.app.activity(ACTIVITY.republishToStuckService, { handler: republishToStuckService });
df.app.activity(ACTIVITY.checkServiceBacklog, { handler: checkServiceBacklog });
df.app.activity(ACTIVITY.markOrderCompleted, { handler: markOrderCompleted });
df.app.activity(ACTIVITY.markOrderAttention, { handler: markOrderAttention });
df.app.activity(ACTIVITY.beginCompensation, { handler: beginCompensation });
