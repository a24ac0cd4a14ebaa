/**
 * The local services end with whatever launched them. `npm start` runs each service in a session
 * of its own (so a Ctrl-C reaches only `npm start`, which stops them in order); a launcher that
 * dies without that chance (SIGKILL, a crash) would leave them running and holding their ports.
 * Likewise npm, asked to stop, passes the signal to the shell that runs the script, not to the
 * node process below it: that one lives on. Each watches its parent and stops once it is gone.
 */

/** Set by spawnService for every service it starts: the pid of the process that started it. */
export const LAUNCHER_PID_VARIABLE = 'LOCAL_LAUNCHER_PID';

/** How often the parent is checked (a getppid call). */
const CHECK_INTERVAL_MS = 1000;

/**
 * The parent as this module loads, early in the process's start: read later (once the service
 * listens), a launcher that died in between would already have been replaced by init.
 */
const parentAtStart = process.ppid;

/**
 * Calls `onGone` once when this process's parent goes away, if the parent is one to follow: the
 * launcher named in LOCAL_LAUNCHER_PID, or the shell of an npm script. A process started any other
 * way (by hand, in the background on purpose) is left alone. The check never keeps the process up.
 */
export function stopWhenLauncherGone(onGone: (why: string) => void): void {
  const named = process.env[LAUNCHER_PID_VARIABLE] === String(parentAtStart);
  const npmScript = process.env['npm_lifecycle_event'] !== undefined;
  if (!named && !npmScript) return;
  const check = (): boolean => {
    if (process.ppid === parentAtStart) return false;
    onGone(`the process that started this one (pid ${parentAtStart}) is gone`);
    return true;
  };
  if (check()) return;
  const timer = setInterval(() => {
    if (check()) clearInterval(timer);
  }, CHECK_INTERVAL_MS);
  timer.unref();
}
