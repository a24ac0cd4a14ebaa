/** Shows an API error as its problem+json detail (and field errors), never a bare "failed". */
import { ApiProblem } from './api';
import { fill, h } from './dom';

export function describeError(error: unknown): { detail: string; fieldErrors: string[]; status?: number } {
  if (error instanceof ApiProblem) return { detail: error.detail, fieldErrors: error.fieldErrors, status: error.status };
  return { detail: error instanceof Error ? error.message : String(error), fieldErrors: [] };
}

/** Fills `container` (an element with role="alert") with `lead: detail` and any field errors. */
export function showProblem(container: Element, error: unknown, lead: string): void {
  const { detail, fieldErrors, status } = describeError(error);
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
