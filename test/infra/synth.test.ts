// `npm run synth` end to end: the built CLI writes plain Terraform JSON for the chosen environment,
// offline, and refuses bad parameters before writing anything. Needs a build first (dist/infra).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repositoryRoot } from '../../infra/repository';

const cli = path.join(repositoryRoot(), 'dist', 'infra', 'main.js');
let outdir: string;

beforeAll(() => {
  if (!fs.existsSync(cli)) throw new Error('no dist/infra/main.js: run `npx tsc -p tsconfig.json` first');
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'order-saga-synth-'));
});
afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

const synth = (env: Record<string, string>) =>
  spawnSync(process.execPath, [cli], {
    encoding: 'utf8',
    // No proxy, no credentials, no Azure: synth must not need any of them.
    env: { PATH: process.env.PATH ?? '', CDKTF_OUTDIR: outdir, ...env },
  });

it('writes cdktf.out/stacks/<stack>/cdk.tf.json for the environment it is given', () => {
  const run = synth({ ORDERS_ENV: 'ci', ORDERS_LOCATION: 'northeurope', ORDERS_PLAN_SKU: 'EP2' });
  expect(run.status).toBe(0);
  const file = path.join(outdir, 'stacks', 'order-saga-ci', 'cdk.tf.json');
  expect(run.stdout).toContain(file);
  const tf = JSON.parse(fs.readFileSync(file, 'utf8'));
  expect(Object.values(tf.resource.azurerm_resource_group)).toEqual([
    expect.objectContaining({ name: 'rg-ordersaga-ci', location: 'northeurope' }),
  ]);
  expect(Object.values(tf.resource.azurerm_service_plan)).toEqual([expect.objectContaining({ sku_name: 'EP2' })]);
});

it('exits 2 with the offending variable named, and writes nothing', () => {
  const run = synth({ ORDERS_ENV: 'bad', ORDERS_SERVICEBUS_SKU: 'Basic' });
  expect(run.status).toBe(2);
  expect(run.stderr).toMatch(/ORDERS_SERVICEBUS_SKU=Basic: expected one of Standard, Premium/);
  expect(fs.existsSync(path.join(outdir, 'stacks', 'order-saga-bad'))).toBe(false);
});
