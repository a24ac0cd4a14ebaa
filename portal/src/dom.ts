/**
 * A tiny element builder. Text always goes in as text nodes, never as HTML, so nothing an order
 * carries (customer ids, failure reasons) can inject markup into the page.
 */
type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

export function append(parent: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren();
  append(parent, children);
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page has no #${id}`);
  return element as T;
}

/** Puts `element` at `index` among `parent`'s children, unless it is there: moving a node drops focus inside it. */
export function placeAt(parent: Element, element: Element, index: number): void {
  const current = parent.children[index];
  if (current !== element) parent.insertBefore(element, current ?? null);
}

/**
 * After a "Show more" that adds to `list` from place `from`: once the first one added is listed, or
 * none will be (`hasMore` false), `focus` is given it (undefined: none came) and true is returned.
 * Focus moves only from the button or from nowhere: a person who moved on meanwhile keeps theirs.
 */
export function focusFirstAdded(list: Element, from: number, hasMore: boolean, button: Element, focus: (first: HTMLElement | undefined) => void): boolean {
  const first = list.children[from] as HTMLElement | undefined;
  if (!first && hasMore) return false; // not in yet
  const active = document.activeElement;
  if (active === button || active === document.body || active === null) focus(first);
  return true;
}
