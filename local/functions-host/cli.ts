/**
 * `node dist/local/functions-host/cli.js [--app-dir <path>]`: runs a v4 Node.js Functions app
 * like `func start` does. Exits non-zero with a clear message when the app cannot be served.
 */
import { resolve } from 'node:path';
import { stopWhenLauncherGone } from '../launcher';
import { redactSecrets } from './host-log';
import { FunctionsHost } from './host';

function parseArgs(argv: string[]): { appDir: string } {
  let appDir = process.cwd();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--app-dir' || arg === '--script-root') {
      const value = argv[++i];
      if (!value) throw new Error(`${arg} needs a path`);
      appDir = resolve(value);
    } else if (arg.startsWith('--app-dir=')) {
      appDir = resolve(arg.slice('--app-dir='.length));
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: functions-host [--app-dir <path>]   (FUNCTIONS_HTTP_PORT sets the port; 0 = any)\n');
      process.exit(0);
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  return { appDir };
}

async function main(): Promise<void> {
  const { appDir } = parseArgs(process.argv.slice(2));
  // Like Core Tools, the app runs with its own directory as the working directory.
  process.chdir(appDir);
  const host = await FunctionsHost.start({ appDir });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      process.stderr.write(`second ${signal}: exiting now\n`);
      process.exit(1);
    }
    host.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${redactSecrets(String(err))}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  stopWhenLauncherGone((why) => {
    process.stderr.write(`${why}: stopping the Functions host\n`);
    onSignal('SIGTERM');
  });
}

/** Errors that are the app's configuration: the message says it all, a stack would only distract. */
const CONFIGURATION_ERRORS = new Set([
  'HostConfigurationError',
  'MissingSettingError',
  'RouteTemplateError',
  'CronExpressionError',
  'RegistrationError',
]);

// A stray promise in app code is logged, not fatal, as in the Functions worker.
process.on('unhandledRejection', (reason) => {
  const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
  process.stderr.write(`Unhandled promise rejection: ${redactSecrets(text)}\n`);
});

// A start that neither succeeds nor fails (a promise nobody will settle) would otherwise end the
// process with code 0 once nothing is left to run: a failure that looks like success.
let starting = true;
process.on('beforeExit', () => {
  if (!starting) return;
  process.stderr.write('Functions host failed to start: it stopped before it was ready, without an error\n');
  process.exit(1);
});

// A failure exits at once (reportStartFailure): only success has to end the watch above.
main().then(() => {
  starting = false;
}, reportStartFailure);

function reportStartFailure(err: unknown): never {
  const text =
    err instanceof Error
      ? CONFIGURATION_ERRORS.has(err.name)
        ? `${err.name}: ${err.message}`
        : (err.stack ?? err.message)
      : String(err);
  process.stderr.write(`Functions host failed to start: ${redactSecrets(text)}\n`);
  process.exit(1);
}
