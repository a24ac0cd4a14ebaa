// Bundles the support portal (portal/src) into dist/portal, which the portal HTTP function serves.
const fs = require('fs');
const path = require('path');
const src = path.join(__dirname, 'src');
const out = path.join(__dirname, '..', 'dist', 'portal');
if (!fs.existsSync(path.join(src, 'main.ts'))) process.exit(0);
require('esbuild').buildSync({
  entryPoints: [path.join(src, 'main.ts')],
  bundle: true,
  minify: true,
  sourcemap: true,
  target: 'es2020',
  outfile: path.join(out, 'app.js'),
});
for (const f of fs.readdirSync(path.join(__dirname, 'static'))) {
  fs.copyFileSync(path.join(__dirname, 'static', f), path.join(out, f));
}
