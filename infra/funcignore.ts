/**
 * `.funcignore` as Azure Functions Core Tools reads it: gitignore syntax, matched against paths
 * relative to the app root. The package builder uses it so a zip built here leaves out exactly what
 * `func azure functionapp publish` would.
 */

interface IgnoreRule {
  pattern: string;
  negate: boolean;
  directoryOnly: boolean;
  regex: RegExp;
}

/** `*` and `?` stay within one path segment; `**` crosses segments. */
export function globToRegExpSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const slashAfter = glob[i + 2] === '/';
        if (atStart && slashAfter) {
          out += '(?:.*/)?'; // `**/` : zero or more directories
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else {
      out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return out;
}

function parseRule(line: string): IgnoreRule | undefined {
  let pattern = line.replace(/\s+$/, '');
  if (!pattern || pattern.startsWith('#')) return undefined;
  const negate = pattern.startsWith('!');
  if (negate) pattern = pattern.slice(1);
  const directoryOnly = pattern.endsWith('/');
  if (directoryOnly) pattern = pattern.slice(0, -1);
  // A slash anywhere but the end ties the pattern to the root; otherwise it matches at any depth.
  const anchored = pattern.includes('/');
  if (pattern.startsWith('/')) pattern = pattern.slice(1);
  const body = globToRegExpSource(pattern);
  const regex = new RegExp(anchored ? `^${body}$` : `(?:^|/)${body}$`);
  return { pattern: line, negate, directoryOnly, regex };
}

export class FuncIgnore {
  private readonly rules: IgnoreRule[];

  constructor(text: string) {
    this.rules = text.split(/\r?\n/).flatMap((l) => parseRule(l) ?? []);
  }

  /**
   * Whether `relativePath` (posix separators) is left out. Callers walk top-down and do not descend
   * into an ignored directory, which gives gitignore's rule that a file under an ignored directory
   * cannot be re-included.
   */
  ignores(relativePath: string, isDirectory: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.directoryOnly && !isDirectory) continue;
      if (rule.regex.test(relativePath)) ignored = !rule.negate;
    }
    return ignored;
  }
}
