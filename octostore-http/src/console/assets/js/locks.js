// Locks: every user's live leases, counting down, with their waiters, the caller's marked
// and with release; any lock's status by name (holder, fencing token, waiters); locks of
// anyone seen in the change stream, each of which reads the list again.

import { call, get, seg } from './api.js';
import { el, fill, field, table, confirmAction, act, duration, say, debounced } from './dom.js';

/** Name → the last lock event seen for it (of anyone) since the page opened. */
const seen = new Map();

/** The most locks the list reads, a page of `GET /locks?all=true` after another. */
const MOST_LISTED = 1000;

/** Every user's live leases by name (at most `MOST_LISTED`), and whether more were left out. */
async function allLocks() {
  const locks = [];
  let after = null;
  do {
    const query = new URLSearchParams({ all: 'true', limit: String(Math.min(1000, MOST_LISTED - locks.length)) });
    if (after !== null) query.set('after', after);
    const page = await get(`/locks?${query}`);
    locks.push(...page.locks);
    after = page.next ?? null;
  } while (after !== null && locks.length < MOST_LISTED);
  return { locks, more: after !== null };
}

export function mount(root, selected) {
  const held = el('div');
  const others = el('div');
  const detail = el('div', { class: 'card', hidden: true, id: 'lock-detail' });
  const name = el('input', { name: 'lock', required: true, pattern: '[A-Za-z0-9_-]+', spellcheck: false });
  const ttl = el('input', { name: 'ttl', type: 'number', min: 1, max: 3600, value: 60, required: true });
  const lookupName = el('input', { name: 'lookup', required: true, pattern: '[A-Za-z0-9_-]+', spellcheck: false, value: selected });
  /** Every user's live leases, and the ids of the caller's among them. */
  let leases = [];
  let mineIds = new Set();
  let more = false;

  fill(root,
    el('h2', {}, 'Locks'),
    el('section', { class: 'card' },
      el('h3', {}, 'Held now'),
      el('p', { class: 'hint' }, 'Every user’s live leases; yours are marked, and only yours can be released here.'),
      held,
      el('form', { class: 'row', id: 'acquire-form', onsubmit: acquire },
        field('Lock name', name), field('TTL (seconds)', ttl),
        el('button', { type: 'submit' }, 'Acquire'))),
    el('section', { class: 'card' },
      el('h3', {}, 'Any lock'),
      el('form', { class: 'row', id: 'lookup-form', onsubmit: lookup },
        field('Lock name', lookupName), el('button', { type: 'submit' }, 'Look up'))),
    detail,
    el('section', { class: 'card' },
      el('h3', {}, 'Seen in the change stream'),
      el('p', { class: 'hint' }, 'Locks of every user acquired, renewed, released or expired since this page opened.'),
      others));

  async function acquire(submit) {
    submit.preventDefault();
    await act(submit.submitter, async () => {
      await call('POST', `/locks/${seg(name.value)}/acquire`, { ttl_seconds: Number(ttl.value) });
      await refresh();
    }, `Acquired ${name.value}`);
  }

  function lookup(submit) {
    submit.preventDefault();
    location.hash = `#/locks/${seg(lookupName.value)}`;
  }

  async function refresh() {
    try {
      const [all, own] = await Promise.all([allLocks(), get('/locks')]);
      leases = all.locks;
      more = all.more;
      mineIds = new Set(own.locks.map((lease) => lease.lease_id));
      draw();
    } catch (error) {
      say(error.message, true);
    }
  }

  function left(expiresAt) {
    return (Date.parse(expiresAt) - Date.now()) / 1000;
  }

  /** A cell that counts down to `expiresAt` (see `tick`). */
  function countdown(expiresAt) {
    return el('td', { class: 'num countdown', 'data-expires': expiresAt }, duration(left(expiresAt)));
  }

  /** Counts every countdown down; a listed lease that ran out is dropped. */
  function tick() {
    for (const cell of root.querySelectorAll('[data-expires]')) {
      const seconds = left(cell.dataset.expires);
      cell.textContent = seconds > 0 ? duration(seconds) : 'expired';
    }
    if (leases.some((lease) => left(lease.expires_at) <= 0)) {
      leases = leases.filter((lease) => left(lease.expires_at) > 0);
      draw();
    }
  }

  function draw() {
    const yours = leases.filter((lease) => mineIds.has(lease.lease_id)).length;
    fill(held, leases.length === 0
      ? el('p', { class: 'empty' }, 'No lock is held.')
      : [
        table('Held now', ['Name', 'Holder', 'Fencing token', 'Time left', 'Waiters', 'Client', ''], leases.map((lease) => {
          const own = mineIds.has(lease.lease_id);
          return el('tr', { 'data-lock': lease.name, 'data-holder': lease.holder, class: own && 'mine' },
            el('td', {}, el('a', { href: `#/locks/${seg(lease.name)}` }, lease.name)),
            el('td', {}, own ? `${lease.holder} (you)` : lease.holder),
            el('td', { class: 'num' }, lease.fencing_token),
            countdown(lease.expires_at),
            el('td', { class: 'num waiters' }, lease.waiters ?? 0),
            el('td', {}, lease.client_id ?? ''),
            el('td', {}, own ? el('button', {
              type: 'button', class: 'danger', onclick: (click) => release(click.currentTarget, lease),
            }, 'Release') : ''));
        })),
        el('p', { class: 'count' }, more
          ? `The first ${leases.length} locks by name; ${yours} of them yours.`
          : `${leases.length} held, ${yours} by you.`),
      ]);
    const rows = [...seen.values()].sort((a, b) => b.index - a.index).map((event) => {
      const ended = event.action === 'released' || event.action === 'expired';
      return el('tr', { 'data-seen': event.name },
        el('td', {}, el('a', { href: `#/locks/${seg(event.name)}` }, event.name)),
        el('td', {}, event.holder ?? ''),
        el('td', { class: 'num' }, event.fencing_token ?? ''),
        ended ? el('td', {}, event.action === 'released' ? 'released' : 'expired') : countdown(event.expires_at));
    });
    fill(others, rows.length === 0
      ? el('p', { class: 'empty' }, 'Nothing yet.')
      : table('Locks seen', ['Name', 'Holder', 'Fencing token', 'Time left'], rows));
  }

  async function release(button, lease) {
    if (!await confirmAction(`Release your lease on “${lease.name}”? Another holder may take it at once.`)) return;
    await act(button, async () => {
      await call('POST', `/locks/${seg(lease.name)}/release`, { lease_id: lease.lease_id });
      await refresh();
    }, `Released ${lease.name}`);
  }

  async function showDetail(lockName) {
    if (!lockName) { detail.hidden = true; return; }
    detail.hidden = false;
    try {
      const lock = await get(`/locks/${seg(lockName)}`);
      const rows = lock.status === 'held'
        ? [['Holder', lock.holder], ['Fencing token', lock.fencing_token], ['Expires', new Date(lock.expires_at).toLocaleString()],
          ['Client', lock.client_id ?? '—'], ['Waiters', lock.waiters ?? 0]]
        : [['Status', 'available'], ['Waiters', lock.waiters ?? 0]];
      fill(detail, el('h3', {}, `Lock ${lock.name}`),
        el('dl', {}, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
        el('a', { href: '#/locks' }, 'Close'));
    } catch (error) {
      fill(detail, el('h3', {}, `Lock ${lockName}`), el('p', { class: 'error' }, error.message));
    }
  }

  // A burst of lock events reads the list once.
  const refreshSoon = debounced(refresh, 200);
  const ticker = setInterval(tick, 1000);
  refresh();
  showDetail(selected);
  return {
    refresh,
    onEvent(event) {
      if (event.kind !== 'lock') return;
      seen.set(event.name, event);
      refreshSoon();
      if (event.name === selected) showDetail(selected);
    },
    stop: () => clearInterval(ticker),
  };
}
