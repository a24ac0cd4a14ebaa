/**
 * `npm run synth`: writes the Terraform JSON for one environment to cdktf.out/stacks/<stack>/cdk.tf.json.
 * Offline: nothing here talks to Azure or downloads a provider. Parameters: see infra/parameters.ts.
 */
import * as path from 'node:path';
import { App } from 'cdktf';
import { ParameterError, readParameters } from './parameters';
import { repositoryRoot } from './repository';
import { OrderSagaStack, stackName } from './stack';

function synthesize(): void {
  const started = Date.now();
  const parameters = readParameters(process.env);
  // `cdktf synth` (cdktf-cli) tells the app where to write through CDKTF_OUTDIR.
  const outdir = process.env.CDKTF_OUTDIR || path.join(repositoryRoot(), 'cdktf.out');
  const app = new App({ outdir });
  const name = stackName(parameters);
  new OrderSagaStack(app, name, { parameters });
  app.synth();
  const file = path.join(outdir, 'stacks', name, 'cdk.tf.json');
  if (!parameters.auth) {
    console.warn(
      'synth: App Service Authentication is off (ORDERS_AUTH_CLIENT_ID/ORDERS_AUTH_TENANT_ID unset): ' +
        'the support routes have no signed-in callers; see infra/README.md, "Support routes and Entra ID"',
    );
  }
  console.log(`synthesized ${name} (${parameters.location}, ${parameters.planSku}) in ${Date.now() - started} ms: ${file}`);
}

try {
  synthesize();
} catch (err) {
  if (err instanceof ParameterError) {
    console.error(`synth: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
