/**
 * `npm run package`: builds dist-package/order-saga.zip, the package the Function App runs from once
 * uploaded to its storage account's `deployments` container (infra/README.md). Run after the build
 * (the npm script does both).
 */
import * as path from 'node:path';
import { buildDeploymentPackage, PackagingError } from './deployment-package';
import { repositoryRoot } from './repository';

export const PACKAGE_FILE = path.join('dist-package', 'order-saga.zip');

function main(): void {
  const started = Date.now();
  const root = repositoryRoot();
  const result = buildDeploymentPackage({ root, zipPath: path.join(root, PACKAGE_FILE) });
  const mb = (result.bytes / 1024 / 1024).toFixed(1);
  console.log(
    `packaged ${result.files.length} files (${result.entryPoints.length} entry points, ` +
      `dependencies ${result.dependenciesCached ? 'from cache' : 'installed'}) into ${PACKAGE_FILE}: ` +
      `${mb} MB in ${Date.now() - started} ms`,
  );
}

try {
  main();
} catch (err) {
  if (err instanceof PackagingError) {
    console.error(`package: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
