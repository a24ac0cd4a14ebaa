/** `npm run build` removes compiled files whose source is gone, so a renamed trigger cannot register twice. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

it('removes outputs without a TypeScript source and keeps the rest, and the portal bundle', () => {
  const root = mkdtempSync(join(tmpdir(), 'prune-dist-'));
  try {
    const files = {
      'triggers/kept.ts': '',
      'dist/triggers/kept.js': '',
      'dist/triggers/kept.js.map': '',
      'dist/triggers/renamed.js': '',
      'dist/triggers/renamed.js.map': '',
      'dist/src/support/gone.js': '',
      'dist/portal/app.js': '',
      'dist/.tsbuildinfo': '',
    };
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(join(root, file, '..'), { recursive: true });
      writeFileSync(join(root, file), text);
    }
    const out = execFileSync(process.execPath, [join(__dirname, '../../scripts/prune-dist.js'), root], { encoding: 'utf8' });
    const left = Object.keys(files).filter((f) => existsSync(join(root, f)));
    expect(left).toEqual(['triggers/kept.ts', 'dist/triggers/kept.js', 'dist/triggers/kept.js.map', 'dist/portal/app.js', 'dist/.tsbuildinfo']);
    expect(out).toContain('removed dist/triggers/renamed.js');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
