/**
 * ASP.NET-style route templates as the Functions host uses them: `{id}`, `{id?}`, `{*rest}`,
 * defaults (`{page=1}`), inline constraints (`{n:int}`, `{s:minlength(3)}`, `{x:regex(^a+$)}`),
 * literal segments matched case-insensitively. Routes are tried in the order of their functions'
 * names, as the Functions host tries them, not by ASP.NET's template precedence
 * (azure-functions-host#9876, #3153): of `items/{name}` in `itemByName` and `items/new` in
 * `itemNew`, `itemByName` takes `items/new`.
 */

export class RouteTemplateError extends Error {
  override name = 'RouteTemplateError';
}

type Constraint = (value: string) => boolean;

interface Param {
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue?: string;
  constraints: Constraint[];
}

interface Segment {
  /** Whole-segment literal (lower-cased), or undefined for a parameter segment. */
  literal?: string;
  /** For a parameter segment: one regexp over the segment with one group per parameter. */
  pattern?: RegExp;
  params: Param[];
}

const INT = /^-?\d+$/;
const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const GUID_PLAIN = /^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$/i;

function numArgs(args: string | undefined, count: number, name: string): number[] {
  const parts = (args ?? '').split(',').map((s) => s.trim());
  if (parts.length !== count || parts.some((p) => !INT.test(p))) {
    throw new RouteTemplateError(`constraint ${name} takes ${count} integer argument(s)`);
  }
  return parts.map(Number);
}

function constraint(spec: string): Constraint {
  const m = /^([a-zA-Z]+)(?:\((.*)\))?$/s.exec(spec);
  if (!m) throw new RouteTemplateError(`unknown route constraint: ${spec}`);
  const name = m[1]!.toLowerCase();
  const args = m[2];
  switch (name) {
    case 'int':
      return (v) => INT.test(v) && Math.abs(Number(v)) <= 2 ** 31;
    case 'long':
      return (v) => INT.test(v);
    case 'decimal':
    case 'double':
    case 'float':
      return (v) => NUMBER.test(v);
    case 'bool':
      return (v) => /^(true|false)$/i.test(v);
    case 'guid':
      return (v) => GUID_PLAIN.test(v);
    case 'datetime':
      return (v) => !Number.isNaN(Date.parse(v));
    case 'alpha':
      return (v) => /^[a-z]+$/i.test(v);
    case 'min': {
      const [n] = numArgs(args, 1, name);
      return (v) => INT.test(v) && Number(v) >= n!;
    }
    case 'max': {
      const [n] = numArgs(args, 1, name);
      return (v) => INT.test(v) && Number(v) <= n!;
    }
    case 'range': {
      const [lo, hi] = numArgs(args, 2, name);
      return (v) => INT.test(v) && Number(v) >= lo! && Number(v) <= hi!;
    }
    case 'minlength': {
      const [n] = numArgs(args, 1, name);
      return (v) => v.length >= n!;
    }
    case 'maxlength': {
      const [n] = numArgs(args, 1, name);
      return (v) => v.length <= n!;
    }
    case 'length': {
      const nums = (args ?? '').includes(',') ? numArgs(args, 2, name) : numArgs(args, 1, name);
      const [lo, hi] = nums.length === 2 ? nums : [nums[0], nums[0]];
      return (v) => v.length >= lo! && v.length <= hi!;
    }
    case 'regex': {
      if (args === undefined) throw new RouteTemplateError('constraint regex needs a pattern');
      const re = new RegExp(args, 'i');
      return (v) => re.test(v);
    }
    default:
      throw new RouteTemplateError(`unknown route constraint: ${spec}`);
  }
}

/** Splits `name:c1:c2(a,b)=default` on `:` outside parentheses. */
function parseParam(body: string): Param {
  let text = body.trim();
  let catchAll = false;
  if (text.startsWith('**')) {
    catchAll = true;
    text = text.slice(2);
  } else if (text.startsWith('*')) {
    catchAll = true;
    text = text.slice(1);
  }
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ':' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  let last = parts[parts.length - 1]!;
  let defaultValue: string | undefined;
  let optional = false;
  const eq = depth === 0 ? last.lastIndexOf('=') : -1;
  if (eq >= 0 && !last.slice(eq).includes(')')) {
    defaultValue = last.slice(eq + 1);
    last = last.slice(0, eq);
  }
  if (last.endsWith('?')) {
    optional = true;
    last = last.slice(0, -1);
  }
  parts[parts.length - 1] = last;
  const [name, ...specs] = parts;
  if (!name || !/^[A-Za-z_][\w]*$/.test(name)) throw new RouteTemplateError(`bad route parameter name in {${body}}`);
  return { name, optional, catchAll, defaultValue, constraints: specs.map(constraint) };
}

function parseSegment(text: string): Segment {
  if (!text.includes('{')) {
    if (text.includes('}')) throw new RouteTemplateError(`unbalanced } in route segment "${text}"`);
    return { literal: text.toLowerCase(), params: [] };
  }
  const params: Param[] = [];
  let re = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] === '{') {
      if (text[i + 1] === '{') {
        re += '\\{';
        i += 2;
        continue;
      }
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') {
          depth--;
          if (depth === 0) break;
        }
      }
      if (j >= text.length) throw new RouteTemplateError(`unbalanced { in route segment "${text}"`);
      const param = parseParam(text.slice(i + 1, j));
      params.push(param);
      re += param.catchAll ? '(.*)' : '([^/]+?)';
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && text[j] !== '{') j++;
      re += text
        .slice(i, j)
        .replace(/}}/g, '}')
        .replace(/[.*+?^$()|[\]\\{}]/g, '\\$&');
      i = j;
    }
  }
  if (params.length > 1 && params.some((p) => p.catchAll)) {
    throw new RouteTemplateError(`a catch-all parameter must be alone in its segment: "${text}"`);
  }
  return { pattern: new RegExp(`^${re}$`, 'i'), params };
}

export interface RouteMatch {
  params: Record<string, string>;
}

export class RouteTemplate {
  readonly segments: Segment[];

  constructor(readonly template: string) {
    const trimmed = template.replace(/^[~/]+/, '').replace(/\/+$/, '');
    const raw = trimmed === '' ? [] : trimmed.split('/');
    this.segments = raw.map(parseSegment);
    this.segments.forEach((s, idx) => {
      const catchAll = s.params.some((p) => p.catchAll);
      if (catchAll && idx !== this.segments.length - 1) {
        throw new RouteTemplateError(`a catch-all parameter must be the last segment: ${template}`);
      }
    });
  }

  /** `pathSegments` are already percent-decoded; the catch-all gets the rest joined with `/`. */
  match(pathSegments: string[]): RouteMatch | undefined {
    const params: Record<string, string> = {};
    const segs = this.segments;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      const value = pathSegments[i];
      if (seg.literal !== undefined) {
        if (value === undefined || value.toLowerCase() !== seg.literal) return undefined;
        continue;
      }
      const only = seg.params.length === 1 ? seg.params[0]! : undefined;
      if (only?.catchAll) {
        const rest = pathSegments.slice(i).join('/');
        if (rest === '') {
          if (only.defaultValue !== undefined) params[only.name] = only.defaultValue;
          return { params };
        }
        if (!only.constraints.every((c) => c(rest))) return undefined;
        params[only.name] = rest;
        return { params };
      }
      if (value === undefined || value === '') {
        // Missing trailing segments are fine when every remaining parameter is optional or defaulted.
        for (let k = i; k < segs.length; k++) {
          const s = segs[k]!;
          if (s.literal !== undefined || s.params.length !== 1) return undefined;
          const p = s.params[0]!;
          if (p.defaultValue !== undefined) params[p.name] = p.defaultValue;
          else if (!p.optional && !p.catchAll) return undefined;
        }
        return pathSegments.length <= i + (value === '' ? 1 : 0) ? { params } : undefined;
      }
      const m = seg.pattern!.exec(value);
      if (!m) return undefined;
      for (let k = 0; k < seg.params.length; k++) {
        const p = seg.params[k]!;
        const v = m[k + 1]!;
        if (!p.constraints.every((c) => c(v))) return undefined;
        params[p.name] = v;
      }
    }
    return pathSegments.length === segs.length ? { params } : undefined;
  }
}

export interface HttpRoute<T> {
  /** The function's name: routes are tried in its order. */
  name: string;
  template: RouteTemplate;
  /** Upper-case methods; empty = any. */
  methods: string[];
  target: T;
}

export type RouteResult<T> = { kind: 'found'; route: HttpRoute<T>; params: Record<string, string> } | { kind: 'notFound' };

/** The app's HTTP routes in the order the Functions host tries them: by function name. */
export class RouteTable<T> {
  readonly #routes: HttpRoute<T>[] = [];

  add(name: string, template: string, methods: string[], target: T): void {
    this.#routes.push({ name, template: new RouteTemplate(template), methods: methods.map((m) => m.toUpperCase()), target });
    // Ordinal, case-insensitive, as the host compares function names.
    const key = (route: HttpRoute<T>) => route.name.toUpperCase();
    this.#routes.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }

  get routes(): readonly HttpRoute<T>[] {
    return this.#routes;
  }

  /**
   * The first route, by function name, whose template and methods both match. A route whose template
   * matches but whose methods do not is passed over, as the Functions host's routing does: no
   * route left is a 404 there too, not a 405 (azure-functions-host#10098).
   */
  resolve(method: string, pathSegments: string[]): RouteResult<T> {
    for (const route of this.#routes) {
      if (route.methods.length > 0 && !route.methods.includes(method)) continue;
      const m = route.template.match(pathSegments);
      if (m) return { kind: 'found', route, params: m.params };
    }
    return { kind: 'notFound' };
  }
}
