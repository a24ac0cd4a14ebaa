/**
 * The fault switches in the header: "billing fails" (the reference demo's: every billing attempt
 * throws, so new orders' billing dead-letters) and "refunds fail" (every refund throws, so a
 * compensation that must refund ends in `attention`, for a person to fix and compensate again).
 * Available only where fault injection is enabled; elsewhere they stay disabled and say why (the
 * API's own words).
 */
import { type Faults, getFaults, setFaults } from './api';
import { byId, h } from './dom';
import { describeError, showProblem } from './problem';
import type { Announce } from './orderList';

type Fault = keyof Faults;

const SWITCHES: Record<Fault, { id: string; name: string; on: string; off: string }> = {
  billingFails: {
    id: 'billing-switch',
    name: 'Billing fails',
    on: 'Every billing attempt throws: new orders dead-letter in billing.',
    off: 'Billing works normally.',
  },
  refundFails: {
    id: 'refund-switch',
    name: 'Refunds fail',
    on: 'Every refund throws: an order whose compensation must refund ends in attention.',
    off: 'Refunds work normally.',
  },
};

class FaultSwitch {
  private readonly button: HTMLButtonElement;
  private readonly text: HTMLElement;
  private readonly note: HTMLElement;
  private readonly error: HTMLElement;
  private readonly words: (typeof SWITCHES)[Fault];
  busy = false;
  /**
   * Bumped when a flip begins and when its answer is in: a poll's read of the switches that began
   * before either may have been answered before the flip was made, and must not show its state.
   */
  changes = 0;
  private on = false;

  constructor(
    readonly fault: Fault,
    private readonly announce: Announce,
    container: HTMLElement,
  ) {
    this.words = SWITCHES[fault];
    const id = this.words.id;
    this.text = h('span', { id: `${id}-text`, class: 'switch__text', 'aria-hidden': 'true' }, 'Off');
    // Disabled until fault injection answers: where it is off, the switch says why.
    this.button = h(
      'button',
      { type: 'button', id, class: 'switch', role: 'switch', 'aria-checked': 'false', 'aria-labelledby': `${id}-label`, 'aria-describedby': `${id}-note`, disabled: true },
      h('span', { class: 'switch__track', 'aria-hidden': 'true' }, h('span', { class: 'switch__thumb' })),
      this.text,
    );
    this.note = h('p', { id: `${id}-note`, class: 'fault-switch__note' }, 'Checking fault injection…');
    this.error = h('div', { id: `${id}-error`, class: 'fault-switch__error', role: 'alert' });
    container.append(
      h('div', { class: 'fault-switch' }, h('span', { id: `${id}-label`, class: 'fault-switch__label' }, this.words.name), this.button, this.note, this.error),
    );
    this.button.addEventListener('click', () => void this.toggle());
  }

  render(on: boolean): void {
    this.on = on;
    this.button.disabled = false;
    this.button.setAttribute('aria-checked', String(on));
    this.text.textContent = on ? 'On' : 'Off';
    this.note.textContent = on ? this.words.on : this.words.off;
  }

  unavailable(why: string): void {
    this.button.disabled = true;
    this.note.textContent = `Fault injection unavailable: ${why}`;
  }

  private async toggle(): Promise<void> {
    if (this.busy) return;
    const wanted = !this.on;
    this.busy = true;
    this.changes += 1;
    this.button.setAttribute('aria-busy', 'true');
    this.error.replaceChildren();
    try {
      const answer = await setFaults({ [this.fault]: wanted });
      const now = answer?.[this.fault];
      this.render(typeof now === 'boolean' ? now : wanted);
      this.announce(`${this.words.name} switched ${this.on ? 'on' : 'off'}.`);
    } catch (error) {
      showProblem(this.error, error, `Could not switch "${this.words.name.toLowerCase()}"`);
    } finally {
      this.busy = false;
      this.changes += 1;
      this.button.removeAttribute('aria-busy');
    }
  }
}

export class FaultSwitches {
  private readonly switches: FaultSwitch[];

  constructor(
    announce: Announce,
    /** Told whether fault injection answers here, so the order form can offer `simulate`. */
    private readonly onAvailability: (available: boolean) => void,
  ) {
    const container = byId('fault-switches');
    this.switches = (Object.keys(SWITCHES) as Fault[]).map((fault) => new FaultSwitch(fault, announce, container));
  }

  async refresh(): Promise<void> {
    // A read sent before a flip was made may come back after it, with the state before it: such a
    // read is older than the switch's own answer and is not shown (the next poll reads it again).
    const changesBefore = this.switches.map((s) => s.changes);
    try {
      const faults = await getFaults();
      // A switch being flipped, or flipped while this read was on its way, shows its own answer.
      this.switches.forEach((s, i) => {
        if (!s.busy && s.changes === changesBefore[i]) s.render(Boolean(faults?.[s.fault]));
      });
      this.onAvailability(true);
    } catch (error) {
      for (const s of this.switches) s.unavailable(describeError(error).detail);
      this.onAvailability(false);
    }
  }
}
