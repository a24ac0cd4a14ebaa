/**
 * A modal confirmation on the native <dialog>: the browser traps focus inside it and Escape
 * cancels. Focus goes back to the control that opened it, so keyboard users keep their place.
 */
import { byId } from './dom';

export interface Confirmation {
  title: string;
  message: string;
  confirmLabel: string;
  /** Destructive actions start on "Cancel" so a stray Enter does nothing harmful. */
  destructive?: boolean;
}

export function confirmAction(request: Confirmation): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>('confirm-dialog');
  const confirmButton = byId<HTMLButtonElement>('confirm-ok');
  const cancelButton = byId<HTMLButtonElement>('confirm-cancel');
  byId('confirm-title').textContent = request.title;
  byId('confirm-message').textContent = request.message;
  confirmButton.textContent = request.confirmLabel;
  confirmButton.classList.toggle('button--danger', Boolean(request.destructive));
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;

  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener(
      'close',
      () => {
        opener?.focus();
        resolve(dialog.returnValue === 'confirm');
      },
      { once: true },
    );
    dialog.showModal();
    (request.destructive ? cancelButton : confirmButton).focus();
  });
}
