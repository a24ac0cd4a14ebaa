import { noneMatchHolds } from '../../src/http/conditional';

describe('noneMatchHolds', () => {
  const etag = '"abc"';
  it.each([
    ['"abc"', true],
    ['W/"abc"', true],
    ['"zzz", "abc"', true],
    ['"zzz",W/"abc"', true],
    ['*', true],
    ['"zzz"', false],
    ['"ab"', false],
    ['', false],
  ])('%j against "abc": %s', (header, holds) => {
    expect(noneMatchHolds(header, etag)).toBe(holds);
  });

  it('does not hold without the header', () => {
    expect(noneMatchHolds(null, etag)).toBe(false);
  });
});
