/**
 * Resolves package.json `main` the way the Node.js worker does: a single file, or a glob such as
 * `dist/{triggers,orchestrators,activities}/**\/*.js` (braces, `**`, `*`, `?`).
 */
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** `a/{b,c}/d` -> [`a/b/d`, `a/c/d`], nested braces included. */
export function expandBraces(pattern: string): string[] {
  let depth = 0;
  let open = -1;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '{') {
      if (depth === 0) open = i;
      depth++;
    } else if (ch === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        const head = pattern.slice(0, open);
        const tail = pattern.slice(i + 1);
        const options: string[] = [];
        let d = 0;
        let start = open + 1;
        for (let j = open + 1; j < i; j++) {
          if (pattern[j] === '{') d++;
          else if (pattern[j] === '}') d--;
          else if (pattern[j] === ',' && d === 0) {
            options.push(pattern.slice(start, j));
            start = j + 1;
          }
        }
        options.push(pattern.slice(start, i));
        if (options.length === 1) return expandBraces(head + '\u0000' + options[0] + '\u0001' + tail).map(restore);
        return options.flatMap((o) => expandBraces(head + o + tail));
      }
    }
  }
  return [pattern];
}

/** A single-option brace (`{a}`) is literal text in globs; keep its braces. */
function restore(s: string): string {
  return s.replace(/\u0000/g, '{').replace(/\u0001/g, '}');
}

function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (const ch of segment) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^$()|[\]\\{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether a `/`-separated relative path matches one brace-free pattern. */
export function matchesPattern(path: string, pattern: string): boolean {
  const parts = path.split('/');
  const pats = pattern.split('/').filter((p, i, all) => !(p === '**' && all[i - 1] === '**'));
  const regs = pats.map((p) => (p === '**' ? null : segmentRegExp(p)));
  const memo = new Map<string, boolean>();
  const walk = (pi: number, si: number): boolean => {
    const key = `${pi},${si}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let ok: boolean;
    if (pi === regs.length) ok = si === parts.length;
    else if (regs[pi] === null) ok = walk(pi + 1, si) || (si < parts.length && walk(pi, si + 1));
    else ok = si < parts.length && regs[pi]!.test(parts[si]!) && walk(pi + 1, si + 1);
    memo.set(key, ok);
    return ok;
  };
  return walk(0, 0);
}

export function isGlob(pattern: string): boolean {
  return /[*?{]/.test(pattern);
}

function listFiles(root: string, dir: string, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) listFiles(root, full, out);
    else if (e.isFile()) out.push(relative(root, full).split(sep).join('/'));
  }
}

/** Files under `appDir` matching a glob `main`, sorted so load order is stable. */
export function resolveMainGlob(appDir: string, main: string): string[] {
  const patterns = expandBraces(main.replace(/^\.\//, '')).map((p) => p.replace(/^\.\//, ''));
  const files: string[] = [];
  listFiles(appDir, appDir, files);
  return files
    .filter((f) => patterns.some((p) => matchesPattern(f, p)))
    .sort()
    .map((f) => join(appDir, f));
}
