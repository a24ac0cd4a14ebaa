/**
 * The simulated payment gateway's ledger (container `payments`) and the simulated sender's
 * notifications store (container `notifications`), both partitioned by `/orderId`. Document ids
 * are the idempotency keys (`<orderId>:charge`, `<orderId>:confirmation`): create-if-absent makes
 * each happen once per order however often a message is delivered.
 */
import type { Container } from '@azure/cosmos';
import type { LedgerEntry, NotificationRecord, NotificationStore, PaymentLedger } from '../services/ports';
import { container } from './clients';
import { isConflict, stripSystemProperties } from './cosmosErrors';

async function createIfAbsent<T extends { id: string; orderId: string }>(
  target: Container,
  doc: T,
): Promise<{ created: boolean; value: T }> {
  try {
    const { resource } = await target.items.create<T>(doc);
    return { created: true, value: stripSystemProperties(resource ?? doc) };
  } catch (err) {
    if (!isConflict(err)) throw err;
    const { resource } = await target.item(doc.id, doc.orderId).read<T>();
    if (!resource) throw err;
    return { created: false, value: stripSystemProperties(resource) };
  }
}

async function byOrder<T>(target: Container, orderId: string): Promise<T[]> {
  const { resources } = await target.items
    .query<T>({ query: 'SELECT * FROM c WHERE c.orderId = @orderId', parameters: [{ name: '@orderId', value: orderId }] }, { partitionKey: orderId })
    .fetchAll();
  return resources.map((r) => stripSystemProperties(r as T & object));
}

export class CosmosPaymentLedger implements PaymentLedger {
  constructor(private readonly payments: Container = container('payments')) {}

  async charge(entry: LedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }> {
    const { created, value } = await createIfAbsent(this.payments, entry);
    return { created, entry: value };
  }

  async refund(entry: LedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }> {
    const { created, value } = await createIfAbsent(this.payments, entry);
    return { created, entry: value };
  }

  entries(orderId: string): Promise<LedgerEntry[]> {
    return byOrder<LedgerEntry>(this.payments, orderId);
  }
}

export class CosmosNotificationStore implements NotificationStore {
  constructor(private readonly notifications: Container = container('notifications')) {}

  async send(record: NotificationRecord): Promise<{ created: boolean; record: NotificationRecord }> {
    const { created, value } = await createIfAbsent(this.notifications, record);
    return { created, record: value };
  }

  list(orderId: string): Promise<NotificationRecord[]> {
    return byOrder<NotificationRecord>(this.notifications, orderId);
  }
}
