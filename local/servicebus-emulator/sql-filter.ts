/**
 * The Service Bus SQL filter subset: a small recursive-descent parser producing a closure that
 * evaluates a message with SQL three-valued logic (`null` = unknown; a rule matches only on `true`).
 */

export interface FilterInput {
  /** System properties, keyed lower-case without the `sys.` prefix (`messageid`, `label`, ...). */
  system: Record<string, unknown>;
  /** Application properties as sent. */
  user: Record<string, unknown> | undefined;
}

export type Predicate = (input: FilterInput) => boolean;

type Value = string | number | boolean | Date | null | undefined;
type Expr = (input: FilterInput) => Value;

export class SqlFilterSyntaxError extends Error {
  constructor(message: string, readonly expression: string) {
    super(`invalid SQL filter ${JSON.stringify(expression)}: ${message}`);
    this.name = 'SqlFilterSyntaxError';
  }
}

interface Token {
  kind: 'ident' | 'string' | 'number' | 'op' | 'punct' | 'end';
  text: string;
  /** Upper-cased identifier, to recognise keywords. */
  upper?: string;
  value?: string | number;
}

const KEYWORDS = new Set(['AND', 'OR', 'NOT', 'IS', 'NULL', 'IN', 'LIKE', 'ESCAPE', 'EXISTS', 'TRUE', 'FALSE']);

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (msg: string): never => {
    throw new SqlFilterSyntaxError(`${msg} at offset ${i}`, src);
  };
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) fail('unterminated string');
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += src[i++];
      }
      tokens.push({ kind: 'string', text: s, value: s });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(src.slice(i))!;
      tokens.push({ kind: 'number', text: m[0], value: Number(m[0]) });
      i += m[0].length;
    } else if (c === '[') {
      const end = src.indexOf(']', i);
      if (end < 0) fail('unterminated [identifier]');
      tokens.push({ kind: 'ident', text: src.slice(i + 1, end) });
      i = end + 1;
    } else if (/[A-Za-z_@$]/.test(c)) {
      const m = /^[A-Za-z_@$][A-Za-z0-9_@$]*(?:\.(?:[A-Za-z_@$][A-Za-z0-9_@$]*|\[[^\]]*\]))*/.exec(src.slice(i))!;
      const text = m[0];
      tokens.push({ kind: 'ident', text, upper: text.toUpperCase() });
      i += text.length;
    } else if (src.startsWith('<>', i) || src.startsWith('!=', i) || src.startsWith('<=', i) || src.startsWith('>=', i)) {
      tokens.push({ kind: 'op', text: src.slice(i, i + 2) });
      i += 2;
    } else if ('=<>+-*/%'.includes(c)) {
      tokens.push({ kind: 'op', text: c });
      i++;
    } else if ('(),'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else {
      fail(`unexpected character ${JSON.stringify(c)}`);
    }
  }
  tokens.push({ kind: 'end', text: '<end>' });
  return tokens;
}

/** Case-insensitive lookup, exact name first. */
function lookup(bag: Record<string, unknown> | undefined, name: string): unknown {
  if (!bag) return undefined;
  if (Object.prototype.hasOwnProperty.call(bag, name)) return bag[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(bag)) if (k.toLowerCase() === lower) return bag[k];
  return undefined;
}

function resolveProperty(name: string): { exists: (m: FilterInput) => boolean; get: Expr } {
  const stripBrackets = (s: string) => (s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s);
  const dot = name.indexOf('.');
  const scope = dot > 0 ? name.slice(0, dot).toLowerCase() : '';
  if (scope === 'sys') {
    const key = stripBrackets(name.slice(dot + 1)).toLowerCase();
    const get: Expr = (m) => normalize(m.system[key]);
    return { get, exists: (m) => m.system[key] !== undefined && m.system[key] !== null };
  }
  const prop = scope === 'user' ? stripBrackets(name.slice(dot + 1)) : name;
  const get: Expr = (m) => normalize(lookup(m.user, prop));
  return { get, exists: (m) => lookup(m.user, prop) !== undefined };
}

function normalize(v: unknown): Value {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v instanceof Date) return v;
  if (typeof v === 'bigint') return Number(v);
  return String(v);
}

function compare(a: Value, b: Value): number | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  const at = a instanceof Date ? a.getTime() : undefined;
  const bt = b instanceof Date ? b.getTime() : undefined;
  if (at !== undefined && bt !== undefined) return at - bt;
  return null; // mismatched types: unknown
}

function likeToRegExp(pattern: string, escape: string | undefined): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (escape && c === escape && i + 1 < pattern.length) {
      re += pattern[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else if (c === '%') re += '[\\s\\S]*';
    else if (c === '_') re += '[\\s\\S]';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$', 's');
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[], private readonly src: string) {}

  private peek(): Token {
    return this.tokens[this.pos];
  }
  private next(): Token {
    return this.tokens[this.pos++];
  }
  private isKeyword(word: string, t = this.peek()): boolean {
    return t.kind === 'ident' && t.upper === word;
  }
  private acceptKeyword(word: string): boolean {
    if (this.isKeyword(word)) {
      this.pos++;
      return true;
    }
    return false;
  }
  private expectPunct(p: string): void {
    const t = this.next();
    if (t.kind !== 'punct' || t.text !== p) this.fail(`expected '${p}', got '${t.text}'`);
  }
  private fail(msg: string): never {
    throw new SqlFilterSyntaxError(msg, this.src);
  }

  parse(): Expr {
    const e = this.orExpr();
    if (this.peek().kind !== 'end') this.fail(`unexpected '${this.peek().text}'`);
    return e;
  }

  private orExpr(): Expr {
    let left = this.andExpr();
    while (this.acceptKeyword('OR')) {
      const l = left;
      const r = this.andExpr();
      left = (m) => {
        const a = l(m);
        if (a === true) return true;
        const b = r(m);
        if (b === true) return true;
        return a === false && b === false ? false : null;
      };
    }
    return left;
  }

  private andExpr(): Expr {
    let left = this.notExpr();
    while (this.acceptKeyword('AND')) {
      const l = left;
      const r = this.notExpr();
      left = (m) => {
        const a = l(m);
        if (a === false) return false;
        const b = r(m);
        if (b === false) return false;
        return a === true && b === true ? true : null;
      };
    }
    return left;
  }

  private notExpr(): Expr {
    if (this.acceptKeyword('NOT')) {
      const inner = this.notExpr();
      return (m) => {
        const v = inner(m);
        return v === true ? false : v === false ? true : null;
      };
    }
    return this.predicate();
  }

  private predicate(): Expr {
    if (this.isKeyword('EXISTS')) {
      this.pos++;
      const paren = this.peek().kind === 'punct' && this.peek().text === '(';
      if (paren) this.pos++;
      const t = this.next();
      if (t.kind !== 'ident') this.fail('EXISTS needs a property name');
      if (paren) this.expectPunct(')');
      const { exists } = resolveProperty(t.text);
      return (m) => exists(m);
    }
    const left = this.additive();
    const t = this.peek();
    if (t.kind === 'op' && ['=', '<>', '!=', '<', '>', '<=', '>='].includes(t.text)) {
      this.pos++;
      const right = this.additive();
      const test: (c: number) => boolean =
        t.text === '=' ? (c) => c === 0
        : t.text === '<>' || t.text === '!=' ? (c) => c !== 0
        : t.text === '<' ? (c) => c < 0
        : t.text === '>' ? (c) => c > 0
        : t.text === '<=' ? (c) => c <= 0
        : (c) => c >= 0;
      return (m) => {
        const c = compare(left(m), right(m));
        return c === null ? null : test(c);
      };
    }
    if (this.acceptKeyword('IS')) {
      const negate = this.acceptKeyword('NOT');
      if (!this.acceptKeyword('NULL')) this.fail('expected NULL after IS');
      return (m) => {
        const v = left(m);
        const isNull = v === null || v === undefined;
        return negate ? !isNull : isNull;
      };
    }
    const negate = this.isKeyword('NOT') && (this.isKeyword('IN', this.tokens[this.pos + 1]) || this.isKeyword('LIKE', this.tokens[this.pos + 1]));
    if (negate) this.pos++;
    if (this.acceptKeyword('IN')) {
      this.expectPunct('(');
      const items: Expr[] = [this.additive()];
      while (this.peek().kind === 'punct' && this.peek().text === ',') {
        this.pos++;
        items.push(this.additive());
      }
      this.expectPunct(')');
      return (m) => {
        const v = left(m);
        if (v === null || v === undefined) return null;
        let unknown = false;
        for (const item of items) {
          const c = compare(v, item(m));
          if (c === 0) return !negate;
          if (c === null) unknown = true;
        }
        return unknown ? null : negate;
      };
    }
    if (this.acceptKeyword('LIKE')) {
      const p = this.next();
      if (p.kind !== 'string') this.fail('LIKE needs a string pattern');
      let escape: string | undefined;
      if (this.acceptKeyword('ESCAPE')) {
        const e = this.next();
        if (e.kind !== 'string' || e.text.length !== 1) this.fail('ESCAPE needs a one-character string');
        escape = e.text;
      }
      const re = likeToRegExp(p.text, escape);
      return (m) => {
        const v = left(m);
        if (typeof v !== 'string') return null;
        return negate ? !re.test(v) : re.test(v);
      };
    }
    if (negate) this.fail('expected IN or LIKE after NOT');
    return left;
  }

  private additive(): Expr {
    let left = this.multiplicative();
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || (t.text !== '+' && t.text !== '-')) return left;
      this.pos++;
      const l = left;
      const r = this.multiplicative();
      left =
        t.text === '+'
          ? (m) => {
              const a = l(m);
              const b = r(m);
              if (a === null || b === null || a === undefined || b === undefined) return null;
              if (typeof a === 'number' && typeof b === 'number') return a + b;
              if (typeof a === 'string' && typeof b === 'string') return a + b;
              return null;
            }
          : (m) => {
              const a = l(m);
              const b = r(m);
              return typeof a === 'number' && typeof b === 'number' ? a - b : null;
            };
    }
  }

  private multiplicative(): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || !['*', '/', '%'].includes(t.text)) return left;
      this.pos++;
      const l = left;
      const r = this.unary();
      const op = t.text;
      left = (m) => {
        const a = l(m);
        const b = r(m);
        if (typeof a !== 'number' || typeof b !== 'number') return null;
        if (op === '*') return a * b;
        if (b === 0) return null;
        return op === '/' ? a / b : a % b;
      };
    }
  }

  private unary(): Expr {
    const t = this.peek();
    if (t.kind === 'op' && (t.text === '-' || t.text === '+')) {
      this.pos++;
      const inner = this.unary();
      return t.text === '-' ? (m) => {
        const v = inner(m);
        return typeof v === 'number' ? -v : null;
      } : inner;
    }
    return this.primary();
  }

  private primary(): Expr {
    const t = this.next();
    if (t.kind === 'string' || t.kind === 'number') {
      const v = t.value!;
      return () => v;
    }
    if (t.kind === 'punct' && t.text === '(') {
      const e = this.orExpr();
      this.expectPunct(')');
      return e;
    }
    if (t.kind === 'ident') {
      if (t.upper === 'TRUE') return () => true;
      if (t.upper === 'FALSE') return () => false;
      if (t.upper === 'NULL') return () => null;
      if (t.upper && KEYWORDS.has(t.upper)) this.fail(`unexpected keyword ${t.text}`);
      return resolveProperty(t.text).get;
    }
    this.fail(`unexpected '${t.text}'`);
  }
}

/** Compiles a SQL filter expression; throws SqlFilterSyntaxError on invalid input. */
export function compileSqlFilter(expression: string): Predicate {
  const trimmed = expression.trim();
  if (trimmed === '') throw new SqlFilterSyntaxError('empty expression', expression);
  const expr = new Parser(tokenize(trimmed), expression).parse();
  return (input) => expr(input) === true;
}
