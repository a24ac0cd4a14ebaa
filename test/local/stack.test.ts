/**
 * How the local stack starts the Functions host: with the Node flags the app asks its worker to run
 * with (languageWorkers__node__arguments), as the Functions host starts the Node worker on Azure.
 */
import localSettings from '../../local.settings.json';
import { functionsHostProcess, StartupError, WORKER_ARGUMENTS_SETTING, workerArguments } from '../../local/stack';

const fromEnvironment = process.env[WORKER_ARGUMENTS_SETTING];
afterEach(() => {
  if (fromEnvironment === undefined) delete process.env[WORKER_ARGUMENTS_SETTING];
  else process.env[WORKER_ARGUMENTS_SETTING] = fromEnvironment;
});

it("starts the host with local.settings.json's worker flags, before the script and any tool's flags", () => {
  delete process.env[WORKER_ARGUMENTS_SETTING];
  const flags = localSettings.Values.languageWorkers__node__arguments.split(' ');
  expect(flags).toContain('--heap-growing-percent=150');
  const { command } = functionsHostProcess({}, { nodeArgs: ['--cpu-prof'] });
  expect(command.slice(1, flags.length + 2)).toEqual([...flags, '--cpu-prof']);
  expect(command[flags.length + 2]).toMatch(/functions-host[\\/]cli\.js$/);
});

it('takes the setting from the given settings first, then the environment', () => {
  process.env[WORKER_ARGUMENTS_SETTING] = '--stack-size=2000';
  expect(workerArguments({})).toEqual(['--stack-size=2000']);
  expect(workerArguments({ [WORKER_ARGUMENTS_SETTING]: '  --max-old-space-size=512   --no-warnings ' })).toEqual([
    '--max-old-space-size=512',
    '--no-warnings',
  ]);
  expect(workerArguments({ [WORKER_ARGUMENTS_SETTING]: '' })).toEqual([]);
});

it('refuses anything but Node flags: the value becomes part of a command line', () => {
  expect(() => workerArguments({ [WORKER_ARGUMENTS_SETTING]: '--max-old-space-size=512 /tmp/other-script.js' })).toThrow(
    new StartupError(`${WORKER_ARGUMENTS_SETTING} takes Node flags only (each starting with --), got "/tmp/other-script.js"`),
  );
});
