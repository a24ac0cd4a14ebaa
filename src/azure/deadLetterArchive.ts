/**
 * Dead-lettered messages that name no order (container `deadletters`): completing them from the
 * dead-letter queue must not lose them, so they are kept here, once per source and message id.
 */
import type { Container } from '@azure/cosmos';
import { createHash } from 'node:crypto';
import type { DeadLetterArchive, ParkedDeadLetter, StoredDeadLetter } from '../services/ports';
import { CONTAINERS } from '../topology';
import { container } from './clients';
import { fetchPage, isConflict } from './cosmosErrors';

/** Message ids and bodies may hold characters Cosmos ids forbid: the id is a hash. */
function parkedDeadLetterId(message: Pick<ParkedDeadLetter, 'source' | 'messageId' | 'body'>): string {
  const identity = message.messageId ?? JSON.stringify(message.body ?? null);
  return `dl-${createHash('sha256').update(`${message.source}\n${identity}`).digest('hex')}`;
}

export class CosmosDeadLetterArchive implements DeadLetterArchive {
  constructor(private readonly deadLetters: Container = container(CONTAINERS.deadLetters)) {}

  async park(message: ParkedDeadLetter): Promise<boolean> {
    const body = Buffer.isBuffer(message.body) ? { base64: message.body.toString('base64') } : message.body;
    try {
      await this.deadLetters.items.create({ id: parkedDeadLetterId(message), ...message, body });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  async list(page: { pageSize: number; continuationToken?: string }): Promise<{ deadLetters: StoredDeadLetter[]; continuationToken?: string }> {
    const { items, continuationToken } = await fetchPage<StoredDeadLetter>(this.deadLetters.items, 'SELECT * FROM c ORDER BY c.parkedAt DESC', page);
    return { deadLetters: items, ...(continuationToken ? { continuationToken } : {}) };
  }
}
