// Bundles the support portal (portal/src) into dist/portal, which the portal HTTP function serves.
// index.html's references to app.js and styles.css get a `?v=<content hash>` so browsers can keep
// those files cached for good while index.html itself is always revalidated.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const src = path.join(__dirname, 'src');
const staticDir = path.join(__dirname, 'static');
const out = path.join(__dirname, '..', 'dist', 'portal');
if (!fs.existsSync(path.join(src, 'main.ts'))) process.exit(0);
require('esbuild').buildSync({
  entryPoints: [path.join(src, 'main.ts')],
  bundle: true,
  minify: true,
  sourcemap: true,
  target: 'es2020',
  outfile: path.join(out, 'app.js'),
  logLevel: 'warning',
});
for (const f of fs.readdirSync(staticDir)) {
  if (f !== 'index.html') fs.copyFileSync(path.join(staticDir, f), path.join(out, f));
}
const hashOf = (file) => crypto.createHash('sha256').update(fs.readFileSync(path.join(out, file))).digest('hex').slice(0, 12);
const index = fs
  .readFileSync(path.join(staticDir, 'index.html'), 'utf8')
  .replace(/(src|href)="(app\.js|styles\.css)"/g, (_, attr, file) => `${attr}="${file}?v=${hashOf(file)}"`);
fs.writeFileSync(path.join(out, 'index.html'), index);
