import fc from 'fast-check';
import { cannotBeJson } from '../../local/functions-host/service-bus-triggers';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('Service Bus metadata strings sent as json typed data', () => {
  it('only where JSON.parse would throw, so the library converts them to the same value', () => {
    const jsonish = fc.oneof(
      fc.string(),
      fc.json(),
      fc.uuid(),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.double().map(String),
      fc.constantFrom('', ' ', 'true', ' false ', 'null', 'nul', '01', '-', '1.', '1e', '-0', '0.5', '{', '[', '"'),
    );
    fc.assert(
      fc.property(jsonish, (text) => {
        if (cannotBeJson(text)) expect(parses(text)).toBe(false);
      }),
      { numRuns: 5_000 },
    );
  });

  it('catches the usual metadata values: lock tokens, ids, dates, content types', () => {
    for (const text of ['3c5e4a1e-8f9b-4a55-9f43-0d2f6f6b7a10', '2026-11-26T22:00:00.000Z', 'OrderCreated', 'application/cloudevents+json', '']) {
      expect(cannotBeJson(text)).toBe(true);
    }
    for (const text of ['12', 'true', '{"a":1}']) expect(cannotBeJson(text)).toBe(false);
  });
});
