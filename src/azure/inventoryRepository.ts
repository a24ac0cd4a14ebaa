/**
 * Catalog and stock in Cosmos DB (container `inventory`, id = SKU). A reservation is one
 * conditional patch: "enough available AND this order holds nothing yet" -> move stock from
 * available to reserved and record the hold, with the delivery that took it. Stock never goes below
 * zero under concurrency, and a redelivered reservation (or release) for the same order changes
 * nothing.
 */
import type { Container, PatchOperation } from '@azure/cosmos';
import { readHold, type CatalogItem, type StockHold } from '../domain/catalog';
import type { CallOptions, InventoryStore, ReserveResult } from '../services/ports';
import { container } from './clients';
import { conditionLiteral, isConflict, isNotFound, isPreconditionFailed, stripSystemProperties } from './cosmosErrors';

export class CosmosInventoryRepository implements InventoryStore {
  constructor(private readonly inventory: Container = container('inventory')) {}

  async get(sku: string, options: CallOptions = {}): Promise<CatalogItem | undefined> {
    try {
      const { resource } = await this.inventory.item(sku, sku).read<CatalogItem>({ abortSignal: options.signal });
      return resource ? stripSystemProperties(resource) : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(): Promise<CatalogItem[]> {
    const { resources } = await this.inventory.items.query<CatalogItem>('SELECT * FROM c ORDER BY c.id').fetchAll();
    return resources.map(stripSystemProperties);
  }

  async reserve(sku: string, orderId: string, quantity: number, delivery: string): Promise<ReserveResult> {
    const hold = conditionLiteral(orderId);
    assertQuantity(quantity);
    try {
      await this.inventory.item(sku, sku).patch({
        condition: `from c where c.available >= ${quantity} and not is_defined(c.holds["${hold}"])`,
        operations: [
          { op: 'incr', path: '/available', value: -quantity },
          { op: 'incr', path: '/reserved', value: quantity },
          { op: 'set', path: `/holds/${hold}`, value: { quantity, delivery } satisfies StockHold },
        ],
      });
      return 'reserved';
    } catch (err) {
      if (isNotFound(err)) return 'unknownSku';
      if (!isPreconditionFailed(err)) throw err;
      // Which half of the condition failed? Our own hold means an earlier delivery reserved it.
      const item = await this.get(sku);
      if (!item) return 'unknownSku';
      return item.holds?.[orderId] !== undefined ? 'alreadyReserved' : 'insufficient';
    }
  }

  async hold(sku: string, orderId: string): Promise<{ quantity: number; delivery?: string } | undefined> {
    return readHold((await this.get(sku))?.holds?.[orderId]);
  }

  async release(sku: string, orderId: string, quantity: number, delivery?: string): Promise<boolean> {
    assertQuantity(quantity);
    return this.#dropHold(sku, orderId, delivery, [
      { op: 'incr', path: '/available', value: quantity },
      { op: 'incr', path: '/reserved', value: -quantity },
    ]);
  }

  async settle(sku: string, orderId: string, delivery?: string): Promise<boolean> {
    return this.#dropHold(sku, orderId, delivery, []);
  }

  /** Removes the order's hold (only `delivery`'s, when given) with these operations; false when there was none. */
  async #dropHold(sku: string, orderId: string, delivery: string | undefined, operations: PatchOperation[]): Promise<boolean> {
    const hold = conditionLiteral(orderId);
    const owner = delivery === undefined ? '' : ` and c.holds["${hold}"].delivery = "${conditionLiteral(delivery)}"`;
    try {
      await this.inventory.item(sku, sku).patch({
        condition: `from c where is_defined(c.holds["${hold}"])${owner}`,
        operations: [...operations, { op: 'remove', path: `/holds/${hold}` }],
      });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  async ensure(item: CatalogItem, options: CallOptions = {}): Promise<boolean> {
    try {
      await this.inventory.items.create(item, { abortSignal: options.signal });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}

function assertQuantity(quantity: number): void {
  if (!Number.isSafeInteger(quantity) || quantity <= 0) throw new Error(`invalid quantity ${quantity}`);
}
