// Building the page: every element is made with createElement and every piece of data set as
// text, never parsed as HTML, so a name like `<img src=x onerror=...>` shows as those characters.

/** An element: `attrs` are properties (`on…` ones are listeners), `children` nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key in node && !key.includes('-')) node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces everything in `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** How many ids `field` has made. */
let ids = 0;

/** A labelled input: `<label>` then the control, joined by a generated id. */
export function field(label, control, hint) {
  control.id ||= `f${++ids}`;
  return el('div', { class: 'field' },
    el('label', { htmlFor: control.id }, label), control,
    hint && el('span', { class: 'hint' }, hint));
}

/** A table of `rows` (arrays of cells) under `headings`. */
export function table(caption, headings, rows) {
  return el('table', {}, head(caption, headings), el('tbody', {}, rows));
}

/** A table's caption (for screen readers) and its row of headings. */
function head(caption, headings) {
  return [
    el('caption', { class: 'sr-only' }, caption),
    el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
  ];
}

/** Says `message` in the status line (read out by screen readers); `error` in red. */
export function say(message, error = false) {
  const status = document.getElementById('status');
  status.className = error ? 'status error' : 'status';
  status.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { status.textContent = ''; }, error ? 8000 : 4000);
}

/** Asks before a destructive action; resolves to whether the user confirmed. */
export function confirmAction(message) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

/** Runs `action`, saying `done` after it or its error; the button is disabled meanwhile. */
export async function act(button, action, done) {
  if (button) button.disabled = true;
  try {
    await action();
    if (done) say(done);
  } catch (error) {
    say(error.message, true);
  } finally {
    if (button) button.disabled = false;
  }
}

/** `seconds` as `1h 02m`, `3m 04s` or `5s`. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const two = (n) => String(n).padStart(2, '0');
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${two(Math.floor(s / 60) % 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${two(s % 60)}s`;
  return `${s}s`;
}

/** A date-time as the browser's locale writes it. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

/** `action` once calls stop coming for `ms`. */
export function debounced(action, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => action(...args), ms);
  };
}

/** How many rows a long table shows at first, and adds with each "Show more". */
const PAGE = 100;

/**
 * A table of `items`, `row(item)` each, rendered a page at a time: a list of 10 000 keys
 * paints as fast as one of a hundred.
 */
export function paged(caption, headings, items, row) {
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'more' });
  let shown = 0;
  const next = () => {
    body.append(...items.slice(shown, shown + PAGE).map(row));
    shown = Math.min(items.length, shown + PAGE);
    more.hidden = shown >= items.length;
    more.textContent = `Show more (${items.length - shown} left)`;
  };
  more.addEventListener('click', next);
  next();
  return el('div', {},
    el('table', {}, head(caption, headings), body),
    el('p', { class: 'count' }, `${items.length} in all`), more);
}
