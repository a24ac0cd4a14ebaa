// Removes compiled files whose TypeScript source is gone. tsc never deletes its outputs, and the
// Functions host loads every file under dist/{triggers,orchestrators,activities}: a trigger renamed
// or removed in the source would otherwise still register from its stale copy (locally, and in a
// deployment package built from this tree).
const fs = require('node:fs');
const path = require('node:path');

// The project's root; a test passes another.
const root = process.argv[2] ? path.resolve(process.argv[2]) : path.join(__dirname, '..');
const dist = path.join(root, 'dist');
// Written by portal/build.js, not by tsc.
const notFromTsc = new Set([path.join(dist, 'portal')]);

function walk(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!notFromTsc.has(full)) walk(full);
      continue;
    }
    const compiled = /^(.*)\.js(\.map)?$/.exec(entry.name);
    if (!compiled) continue;
    const source = path.join(root, path.relative(dist, dir), `${compiled[1]}.ts`);
    if (!fs.existsSync(source)) {
      fs.rmSync(full, { force: true });
      console.log(`removed ${path.relative(root, full)} (its source ${path.relative(root, source)} is gone)`);
    }
  }
}

walk(dist);
