/** Shows an API error as its problem+json detail (and field errors), never a bare "failed". */
import { ApiProblem } from './api';
import { fill, h } from './dom';

export function describeError(error: unknown): { detail: string; fieldErrors: string[]; status?: number } {
  if (error instanceof ApiProblem) return { detail: error.detail, fieldErrors: error.fieldErrors, status: error.status };
  return { detail: error instanceof Error ? error.message : String(error), fieldErrors: [] };
}

/** Fills `container` (an element with role="alert") with `lead: detail` and any field errors. */
export function showProblem(container: Element, error: unknown, lead: string): void {
  const { detail: text, fieldErrors, status } = describeError(error);
  // "the order is not valid: items/0/quantity, customerId": the paths are listed below in the form's words.
  const detail = fieldErrors.length ? text.replace(/: [\w/.()-]+(?:, [\w/.()-]+)*$/, '') : text;
  fill(
    container,
    h(
      'p',
      { class: 'problem' },
      h('strong', {}, `${lead}${status ? ` (${status})` : ''}: `),
      h('span', { class: 'problem__detail' }, detail),
    ),
    fieldErrors.length ? h('ul', { class: 'problem__fields' }, fieldErrors.map((line) => h('li', {}, line))) : null,
  );
}
