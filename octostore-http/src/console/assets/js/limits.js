// Limits: the caller's rate limits, each with its use of the window against its maximum and
// the time until it resets, counting down; a check to try one; reset.

import { call, get, seg } from './api.js';
import { el, fill, field, paged, confirmAction, act, duration, say, debounced } from './dom.js';

export function mount(root) {
  const list = el('div');
  const name = el('input', { name: 'limit', required: true, spellcheck: false });
  const max = el('input', { name: 'max', type: 'number', min: 1, max: 10000, value: 10, required: true });
  const windowSeconds = el('input', { name: 'window', type: 'number', min: 1, max: 86400, value: 60, required: true });

  fill(root,
    el('h2', {}, 'Rate limits'),
    el('section', { class: 'card' },
      el('form', { class: 'row', id: 'check-form', onsubmit: check },
        field('Limit name', name), field('Max requests', max), field('Window (seconds)', windowSeconds),
        el('button', { type: 'submit' }, 'Check (uses one)')),
      list));

  async function check(submit) {
    submit.preventDefault();
    await act(submit.submitter, async () => {
      const answer = await call('POST', `/limits/${seg(name.value)}/check`,
        { max_requests: Number(max.value), window_seconds: Number(windowSeconds.value) });
      say(answer.allowed ? `Allowed: ${answer.remaining} left` : `Denied: retry in ${answer.retry_after_seconds} s`);
      await refresh();
    });
  }

  async function refresh() {
    try {
      const { limits } = await get('/limits');
      fill(list, limits.length === 0 ? el('p', { class: 'empty' }, 'No limit counts anything now.')
        : paged('Rate limits', ['Name', 'Used', 'Window', 'Resets in', ''], limits, row));
    } catch (error) {
      say(error.message, true);
    }
  }

  function row(limit) {
    const used = limit.current_count;
    return el('tr', { 'data-limit': limit.name },
      el('td', {}, limit.name),
      el('td', {},
        el('meter', { min: 0, max: limit.max_requests, value: used, high: limit.max_requests * 0.8, 'aria-label': `${limit.name} used` }),
        ` ${used} / ${limit.max_requests}`, limit.allowed ? '' : ' (denying)'),
      el('td', { class: 'num' }, duration(limit.window_seconds)),
      el('td', { class: 'num', 'data-resets': limit.reset_at }, resetsIn(limit.reset_at)),
      el('td', {}, el('button', { type: 'button', class: 'danger', onclick: (click) => reset(click.currentTarget, limit) }, 'Reset')));
  }

  function resetsIn(at) {
    const seconds = (Date.parse(at) - Date.now()) / 1000;
    return seconds > 0 ? duration(seconds) : 'now';
  }

  async function reset(button, limit) {
    if (!await confirmAction(`Reset the limit “${limit.name}”? Its count starts again from zero.`)) return;
    await act(button, async () => {
      await call('DELETE', `/limits/${seg(limit.name)}`);
      await refresh();
    }, `Reset ${limit.name}`);
  }

  // Checks are not events: the counts are read again every few seconds, the countdowns each second.
  const ticker = setInterval(() => {
    for (const cell of root.querySelectorAll('[data-resets]')) cell.textContent = resetsIn(cell.dataset.resets);
  }, 1000);
  // Not while a control in the list has the focus: a keyboard user would lose their place.
  const poller = setInterval(() => { if (!list.contains(document.activeElement)) refresh(); }, 5000);
  const later = debounced(refresh, 200);
  refresh();
  return {
    refresh,
    onEvent: (event) => { if (event.kind === 'limit') later(); },
    stop: () => { clearInterval(ticker); clearInterval(poller); },
  };
}
