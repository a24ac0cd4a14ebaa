/** The SQL filter subset, table-driven: what a subscription rule matches. */
import { compileSqlFilter, SqlFilterSyntaxError, type FilterInput } from '../../local/servicebus-emulator/sql-filter';

const msg: FilterInput = {
  system: { messageid: 'vip-42', label: 'OrderCreated', correlationid: 'c-1', contenttype: 'application/json', sequencenumber: 7 },
  user: { target: 'billing', amount: 120.5, count: 3, flag: true, region: 'eu', 'odd name': 'x', when: new Date('2026-01-01T00:00:00Z') },
};
const untargeted: FilterInput = { system: { label: 'OrderCreated' }, user: { amount: 5 } };

describe('compileSqlFilter', () => {
  it.each<[string, FilterInput, boolean]>([
    ["target IS NULL OR target = 'billing'", msg, true],
    ["target IS NULL OR target = 'inventory'", msg, false],
    ["target IS NULL OR target = 'inventory'", untargeted, true],
    ['target IS NOT NULL', untargeted, false],
    ["target <> 'billing'", msg, false],
    ["target != 'inventory'", msg, true],
    ["target <> 'billing'", untargeted, false], // unknown is not a match
    ['amount > 100 AND count < 5', msg, true],
    ['amount >= 120.5 AND amount <= 120.5', msg, true],
    ['amount > 100 AND count < 3', msg, false],
    ['amount * 2 > 240 AND count + 1 = 4 AND count - 1 = 2 AND count % 2 = 1 AND amount / 2 > 60', msg, true],
    ['-count < 0', msg, true],
    ["region IN ('us', 'eu')", msg, true],
    ["region NOT IN ('us', 'eu')", msg, false],
    ["region IN ('us')", untargeted, false],
    ['NOT (amount > 100)', msg, false],
    ['NOT amount > 100', untargeted, true],
    ['EXISTS(target)', msg, true],
    ['EXISTS(target)', untargeted, false],
    ['NOT EXISTS target', untargeted, true],
    ['flag = TRUE', msg, true],
    ['flag = FALSE', msg, false],
    ["sys.Label = 'OrderCreated'", untargeted, true],
    ["sys.label = 'ordercreated'", msg, false], // names are case-insensitive, values are not
    ["sys.MessageId LIKE 'vip-%'", msg, true],
    ["sys.MessageId LIKE 'vip-_'", msg, false],
    ["sys.MessageId LIKE 'vip-__'", msg, true],
    ["sys.MessageId NOT LIKE 'vip%'", msg, false],
    ["sys.MessageId LIKE 'vip!-%' ESCAPE '!'", msg, true],
    ["sys.CorrelationId = 'c-1' AND sys.ContentType = 'application/json'", msg, true],
    ['sys.SequenceNumber = 7', msg, true],
    ["user.target = 'billing'", msg, true],
    ["[odd name] = 'x'", msg, true],
    ["TARGET = 'billing'", msg, true], // property names match case-insensitively
    ["target = 'it''s'", { system: {}, user: { target: "it's" } }, true],
    ["amount = '120.5'", msg, false], // no implicit conversion
    ['1 = 1', untargeted, true],
    ['TRUE', untargeted, true],
    ['FALSE OR (1 = 1 AND 2 > 1)', untargeted, true],
    ['missing = 1 OR 1 = 1', untargeted, true], // unknown OR true
    ['missing = 1 AND 1 = 0', untargeted, false],
    ['count = 3.0', msg, true],
    ['amount > 1e2', msg, true],
  ])('%s', (expression, input, expected) => {
    expect(compileSqlFilter(expression)(input)).toBe(expected);
  });

  it.each(["target = 'unterminated", 'target = = 1', 'target IS 5', '(a = 1', 'a IN 1', '', 'AND', "a LIKE b", 'a # 1'])('rejects %j', (expression) => {
    expect(() => compileSqlFilter(expression)).toThrow(SqlFilterSyntaxError);
  });
});
