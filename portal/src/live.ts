/**
 * Live updates: one polling loop (the API has no push channel), a polite screen-reader announcer
 * for changes, and the connection line in the header.
 */
import { ApiProblem, signInHref } from './api';
import { byId, fill, h } from './dom';
import { formatTime } from './format';
import { describeError } from './problem';

const INTERVAL_MS = 1500;
const HIDDEN_INTERVAL_MS = 10_000;

/** Runs `tick` every ~1.5 s, never two at once; `now()` runs it as soon as the current one ends. */
export class Poller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;

  constructor(private readonly tick: () => Promise<void>) {
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) this.now();
    });
  }

  now(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      await this.tick();
    } finally {
      this.running = false;
      const delay = this.again ? 0 : document.hidden ? HIDDEN_INTERVAL_MS : INTERVAL_MS;
      this.again = false;
      this.timer = setTimeout(() => void this.run(), delay);
    }
  }
}

export class Announcer {
  private readonly region = byId('announcer');
  private pending: string[] = [];
  private flushScheduled = false;

  /** Messages of one update are read together rather than each cutting off the previous one. */
  readonly announce = (message: string): void => {
    this.pending.push(message);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.region.textContent = this.pending.join(' ');
      this.pending = [];
      this.flushScheduled = false;
    });
  };
}

/** Shows when the data was last fresh, and the API's own error when it is not. */
export class ConnectionLine {
  private readonly line = byId('connection');
  private readonly alert = byId('connection-error');
  private failing = false;

  report(error: unknown): void {
    if (error === undefined) {
      this.line.textContent = `Live · updated ${formatTime(new Date().toISOString())}`;
      this.line.dataset.state = 'ok';
      if (this.failing) this.alert.textContent = '';
      this.failing = false;
      return;
    }
    const detail = describeError(error).detail;
    const signIn = error instanceof ApiProblem ? signInHref(error, location) : undefined;
    this.line.textContent = signIn ? 'Signed out' : 'Not updating';
    this.line.dataset.state = 'error';
    // Announce a failure once, not on every retry.
    const text = `Orders are not updating: ${detail}`;
    if (!this.failing || this.alert.textContent !== (signIn ? `${text}. Sign in` : text)) {
      if (signIn) fill(this.alert, `${text}. `, h('a', { href: signIn }, 'Sign in'));
      else this.alert.textContent = text;
    }
    this.failing = true;
  }
}
