/**
 * Small control documents: Idempotency-Key records (container `idempotency`) and the fault
 * switches (container `control`, document `faults`).
 */
import type { Container } from '@azure/cosmos';
import { createHash } from 'node:crypto';
import type { CallOptions, ControlStore, FaultSwitches, IdempotencyRecord, IdempotencyStore } from '../services/ports';
import { container } from './clients';
import { isConflict, isNotFound, stripSystemProperties } from './cosmosErrors';

interface IdempotencyDocument extends IdempotencyRecord {
  id: string;
}

/** Client keys may hold characters Cosmos ids forbid (`/`, `?`, `#`): the id is their hash. */
export function idempotencyDocumentId(key: string): string {
  return `key-${createHash('sha256').update(key).digest('hex')}`;
}

export class CosmosIdempotencyRepository implements IdempotencyStore {
  constructor(private readonly keys: Container = container('idempotency')) {}

  async claim(record: IdempotencyRecord, options: CallOptions = {}): Promise<{ created: boolean; record: IdempotencyRecord }> {
    const id = idempotencyDocumentId(record.key);
    try {
      await this.keys.items.create<IdempotencyDocument>({ id, ...record }, { abortSignal: options.signal });
      return { created: true, record };
    } catch (err) {
      if (!isConflict(err)) throw err;
      const stored = await this.find(record.key, options);
      if (!stored) throw err;
      return { created: false, record: stored };
    }
  }

  async find(key: string, options: CallOptions = {}): Promise<IdempotencyRecord | undefined> {
    const id = idempotencyDocumentId(key);
    try {
      const { resource } = await this.keys.item(id, id).read<IdempotencyDocument>({ abortSignal: options.signal });
      if (!resource) return undefined;
      const { id: _id, ...stored } = stripSystemProperties(resource);
      void _id;
      return stored;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

const FAULTS_ID = 'faults';
/**
 * How long an instance keeps the switches it read. Every billing delivery asks, so without it each
 * order paid a read; a switch flipped through this instance applies at once, on the others within this.
 */
export const FAULTS_CACHE_MS = 1_000;

export class CosmosControlRepository implements ControlStore {
  #cached: { value: Promise<FaultSwitches>; until: number } | undefined;

  constructor(private readonly control: Container = container('control')) {}

  faults(): Promise<FaultSwitches> {
    const now = Date.now();
    if (this.#cached && this.#cached.until > now) return this.#cached.value;
    const value = this.#read();
    const entry = { value, until: now + FAULTS_CACHE_MS };
    this.#cached = entry;
    // A failed read is not kept: the next caller tries again.
    value.catch(() => {
      if (this.#cached === entry) this.#cached = undefined;
    });
    return value;
  }

  async #read(): Promise<FaultSwitches> {
    try {
      const { resource } = await this.control.item(FAULTS_ID, FAULTS_ID).read<FaultSwitches & { id: string }>();
      return { billingFails: resource?.billingFails === true };
    } catch (err) {
      if (isNotFound(err)) return { billingFails: false };
      throw err;
    }
  }

  async setFaults(faults: FaultSwitches): Promise<void> {
    this.#cached = undefined;
    await this.control.items.upsert({ id: FAULTS_ID, billingFails: faults.billingFails });
    this.#cached = { value: Promise.resolve({ billingFails: faults.billingFails }), until: Date.now() + FAULTS_CACHE_MS };
  }
}
