/**
 * The global "billing fails" switch of the reference demo: while it is on, every billing attempt
 * throws, so new orders' billing dead-letters. Available only where fault injection is enabled;
 * elsewhere the switch stays disabled and says why (the API's own words).
 */
import { getFaults, setFaults } from './api';
import { byId } from './dom';
import { describeError, showProblem } from './problem';
import type { Announce } from './orderList';

export class BillingSwitch {
  private readonly button = byId<HTMLButtonElement>('billing-switch');
  private readonly text = byId('billing-switch-text');
  private readonly note = byId('billing-switch-note');
  private readonly error = byId('billing-switch-error');
  private busy = false;
  private on = false;

  constructor(
    private readonly announce: Announce,
    /** Told whether fault injection answers here, so the order form can offer `simulate`. */
    private readonly onAvailability: (available: boolean) => void,
  ) {
    this.button.addEventListener('click', () => void this.toggle());
  }

  async refresh(): Promise<void> {
    if (this.busy) return;
    try {
      const faults = await getFaults();
      if (this.busy) return;
      this.render(Boolean(faults?.billingFails));
      this.button.disabled = false;
      this.onAvailability(true);
    } catch (error) {
      this.button.disabled = true;
      this.note.textContent = `Fault injection unavailable: ${describeError(error).detail}`;
      this.onAvailability(false);
    }
  }

  private render(on: boolean): void {
    this.on = on;
    this.button.setAttribute('aria-checked', String(on));
    this.text.textContent = on ? 'On' : 'Off';
    this.note.textContent = on
      ? 'Every billing attempt throws: new orders dead-letter in billing.'
      : 'Billing works normally.';
  }

  private async toggle(): Promise<void> {
    if (this.busy) return;
    const wanted = !this.on;
    this.busy = true;
    this.button.setAttribute('aria-busy', 'true');
    this.error.replaceChildren();
    try {
      const answer = await setFaults({ billingFails: wanted });
      this.render(typeof answer?.billingFails === 'boolean' ? answer.billingFails : wanted);
      this.announce(`Billing fails switched ${this.on ? 'on' : 'off'}.`);
    } catch (error) {
      showProblem(this.error, error, 'Could not switch billing failures');
    } finally {
      this.busy = false;
      this.button.removeAttribute('aria-busy');
    }
  }
}
