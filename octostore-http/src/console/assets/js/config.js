// Config: the caller's keys (a page at a time); a key's value, edited as JSON checked before
// it is sent (and by the key's schema on the server), saved with compare-and-set; its versions
// with author and time, any two side by side, and a rollback to any of them.

import { call, get, seg } from './api.js';
import { el, fill, field, table, paged, confirmAction, act, say, when, debounced } from './dom.js';
import { sideBySide } from './diff.js';

export function mount(root, selected) {
  const list = el('div', { id: 'config-list' });
  const detail = el('div');
  const filter = el('input', { type: 'search', name: 'filter', placeholder: 'key contains…' });
  const key = el('input', { name: 'key', required: true, pattern: '[A-Za-z0-9._-]+', spellcheck: false });
  let keys = [];

  fill(root,
    el('h2', {}, 'Config'),
    detail,
    el('section', { class: 'card' },
      el('div', { class: 'row' },
        field('Filter', filter),
        el('form', { class: 'row', id: 'new-key', onsubmit: create },
          field('New key', key), el('button', { type: 'submit' }, 'Create'))),
      list));
  filter.addEventListener('input', debounced(draw, 150));

  async function create(submit) {
    submit.preventDefault();
    await act(submit.submitter, async () => {
      await call('PUT', `/config/${seg(key.value)}`, { value: {}, if_version: 0 });
      location.hash = `#/config/${seg(key.value)}`;
    }, `Created ${key.value}`);
  }

  async function refresh() {
    try {
      keys = (await get('/config')).configs;
      draw();
    } catch (error) {
      say(error.message, true);
    }
  }

  function draw() {
    const shown = filter.value ? keys.filter((c) => c.key.includes(filter.value)) : keys;
    fill(list, shown.length === 0 ? el('p', { class: 'empty' }, 'No key.')
      : paged('Config keys', ['Key', 'Version', 'Description', 'Updated'], shown, (c) =>
        el('tr', { 'data-key': c.key },
          el('td', {}, el('a', { href: `#/config/${seg(c.key)}` }, c.key)),
          el('td', { class: 'num' }, c.version),
          el('td', {}, c.description ?? ''),
          el('td', {}, when(c.updated_at)))));
  }

  /** One key's change, from an event: its summary read again (not the whole list). */
  async function changed(name) {
    const at = keys.findIndex((c) => c.key >= name);
    const here = at >= 0 && keys[at].key === name;
    try {
      const entry = await get(`/config/${seg(name)}`);
      const summary = { key: name, version: entry.version, description: entry.description,
        created_at: entry.created_at, updated_at: entry.updated_at };
      keys.splice(at < 0 ? keys.length : at, here ? 1 : 0, summary);
    } catch (error) {
      if (error.status !== 404) throw error;
      if (here) keys.splice(at, 1);
    }
    draw();
  }

  const editor = selected ? keyEditor(detail, selected, refresh) : null;
  const later = debounced(() => editor?.refresh(), 200);
  refresh();
  return {
    refresh: () => { refresh(); editor?.refresh(); },
    onEvent: (event) => {
      if (event.kind !== 'config') return;
      changed(event.name).catch((error) => say(error.message, true));
      if (event.name === selected) later();
    },
  };
}

/** One key: value editor, schema, versions, diff, rollback, delete. */
function keyEditor(root, key, refreshList) {
  const value = el('textarea', { name: 'value', rows: 10, spellcheck: false, class: 'code' });
  const description = el('input', { name: 'description', maxLength: 500 });
  const problem = el('p', { class: 'error', id: 'value-problem', 'aria-live': 'polite' });
  const schema = el('div');
  const versions = el('div');
  const from = el('select', { name: 'from' });
  const to = el('select', { name: 'to' });
  const diff = el('div', { id: 'diff' });
  let latest = null;
  let history = [];
  // Until the user picks versions to compare, the latest two are picked.
  let picked = false;
  const pick = () => { picked = true; };
  from.addEventListener('change', pick);
  to.addEventListener('change', pick);

  value.setAttribute('aria-describedby', 'value-problem');
  value.addEventListener('input', check);
  fill(root, el('section', { class: 'card', id: 'config-detail' },
    el('h3', {}, `Key ${key}`),
    el('form', { id: 'edit-form', onsubmit: save },
      field('Value (JSON)', value), problem,
      field('Description', description, 'Left as it is, the previous version\'s is kept.'),
      el('button', { type: 'submit', class: 'primary' }, 'Save new version')),
    schema,
    el('h4', {}, 'Versions'), versions,
    el('h4', {}, 'Compare'),
    el('form', { class: 'row', id: 'diff-form', onsubmit: (submit) => { submit.preventDefault(); compare(); } },
      field('From', from), field('To', to), el('button', { type: 'submit' }, 'Compare')),
    diff,
    el('p', {}, el('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete key'),
      ' ', el('a', { href: '#/config' }, 'Close'))));

  function check() {
    try {
      JSON.parse(value.value);
      value.removeAttribute('aria-invalid');
      problem.textContent = '';
      return true;
    } catch (error) {
      value.setAttribute('aria-invalid', 'true');
      problem.textContent = `Not JSON: ${error.message}`;
      return false;
    }
  }

  async function refresh() {
    try {
      const entry = await get(`/config/${seg(key)}`);
      const edited = latest !== null && value.value !== pretty(latest.value);
      latest = entry;
      if (!edited) value.value = pretty(entry.value);
      description.placeholder = entry.description ?? '';
      history = await allVersions(key);
      drawVersions();
      const known = await get(`/config/${seg(key)}/schema`).catch(() => null);
      fill(schema, known && [el('h4', {}, 'Schema'),
        el('p', { class: 'hint' }, 'Every new version must match it (the server checks).'),
        el('pre', { class: 'code' }, pretty(known.schema))]);
    } catch (error) {
      say(error.message, true);
    }
  }

  function drawVersions() {
    fill(versions, table('Versions', ['Version', 'By', 'At', 'Description', ''], [...history].reverse().map((v) =>
      el('tr', { 'data-version': v.version },
        el('td', { class: 'num' }, v.version),
        el('td', {}, v.created_by ?? '—'),
        el('td', {}, when(v.created_at)),
        el('td', {}, v.description ?? ''),
        el('td', {}, v.version === latest.version ? 'latest'
          : el('button', { type: 'button', onclick: (click) => rollback(click.currentTarget, v.version) }, `Roll back to ${v.version}`))))));
    const options = (selectedVersion) => history.map((v) =>
      el('option', { value: v.version, selected: v.version === selectedVersion }, `v${v.version}`));
    const last = history.length ? history[history.length - 1].version : 0;
    const before = history.length > 1 ? history[history.length - 2].version : last;
    fill(from, options(picked ? Number(from.value) : before));
    fill(to, options(picked ? Number(to.value) : last));
  }

  async function save(submit) {
    submit.preventDefault();
    if (!check()) return;
    const body = { value: JSON.parse(value.value), if_version: latest.version };
    if (description.value) body.description = description.value;
    await act(submit.submitter, async () => {
      try {
        latest = await call('PUT', `/config/${seg(key)}`, body);
      } catch (error) {
        // A value the key's schema refuses, or a version saved meanwhile: said by the field.
        problem.textContent = error.message;
        throw error;
      }
      value.value = pretty(latest.value);
      description.value = '';
      await refresh();
      refreshList();
    }, `Saved ${key} as version ${latest.version + 1}`);
  }

  async function rollback(button, version) {
    if (!await confirmAction(`Roll “${key}” back to version ${version}? It is stored again as a new version.`)) return;
    await act(button, async () => {
      latest = await call('POST', `/config/${seg(key)}/rollback`, { version, if_version: latest.version });
      value.value = pretty(latest.value);
      await refresh();
      refreshList();
    }, `Rolled ${key} back to version ${version}`);
  }

  function compare() {
    const a = history.find((v) => v.version === Number(from.value));
    const b = history.find((v) => v.version === Number(to.value));
    if (!a || !b) return;
    const rows = sideBySide(pretty(a.value).split('\n'), pretty(b.value).split('\n'));
    const cell = (text, kind) => el('td', { class: `code ${kind}` }, text ?? '');
    fill(diff, table(`Version ${a.version} and version ${b.version}`, [`v${a.version}`, `v${b.version}`],
      rows.map((r) => el('tr', { class: r.kind },
        cell(r.left, r.left !== null && r.kind !== 'same' ? 'old' : ''),
        cell(r.right, r.right !== null && r.kind !== 'same' ? 'new' : '')))));
  }

  async function remove(click) {
    const button = click.currentTarget;
    if (!await confirmAction(`Delete the key “${key}”? An undelete can bring it back for a while.`)) return;
    await act(button, async () => {
      await call('DELETE', `/config/${seg(key)}`);
      location.hash = '#/config';
    }, `Deleted ${key}`);
  }

  refresh();
  return { refresh };
}

/** Every kept version of `key`, oldest first, following the history's pages. */
async function allVersions(key) {
  const versions = [];
  for (let after = 0; ;) {
    const page = (await get(`/config/${seg(key)}/history?after=${after}&limit=100`)).versions;
    versions.push(...page);
    if (page.length < 100) return versions;
    after = page[page.length - 1].version;
  }
}

function pretty(json) {
  return JSON.stringify(json, null, 2);
}
