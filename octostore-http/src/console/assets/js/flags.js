// Flags: the caller's flags with their state and rollout (toggled with PATCH, which keeps the
// rollout; the slider PUTs state and percentage, which keeps the targeting); a flag's rules,
// variants and prerequisites; segments; evaluation for a subject with value, variant, reason.

import { call, get, seg } from './api.js';
import { el, fill, field, table, paged, confirmAction, act, say, when, debounced } from './dom.js';

export function mount(root, selected) {
  const list = el('div');
  const detail = el('div');
  const segments = el('div');
  const name = el('input', { name: 'flag', required: true, pattern: '[A-Za-z0-9_-]+', spellcheck: false });
  const filter = el('input', { type: 'search', name: 'filter', placeholder: 'name contains…' });
  let flags = [];

  fill(root,
    el('h2', {}, 'Feature flags'),
    detail,
    el('section', { class: 'card' },
      el('div', { class: 'row' },
        field('Filter', filter),
        el('form', { class: 'row', id: 'new-flag', onsubmit: create },
          field('New flag', name), el('button', { type: 'submit' }, 'Create'))),
      list),
    el('section', { class: 'card' }, el('h3', {}, 'Segments'), segments));
  filter.addEventListener('input', debounced(draw, 150));

  async function create(submit) {
    submit.preventDefault();
    await act(submit.submitter, async () => {
      await call('PUT', `/flags/${seg(name.value)}`, { enabled: false });
      location.hash = `#/flags/${seg(name.value)}`;
    }, `Created ${name.value} (off)`);
  }

  async function refresh() {
    try {
      flags = (await get('/flags')).flags;
      draw();
      if (selected) drawDetail(flags.find((flag) => flag.name === selected));
      const { segments: all } = await get('/segments');
      fill(segments, all.length === 0 ? el('p', { class: 'empty' }, 'No segment.')
        : table('Segments', ['Name', 'Description', 'Constraints'], all.map((s) =>
          el('tr', {}, el('td', {}, s.name), el('td', {}, s.description ?? ''),
            el('td', {}, s.constraints.map(constraint).join(' and '))))));
    } catch (error) {
      say(error.message, true);
    }
  }

  function draw() {
    const shown = flags.filter((flag) => flag.name.includes(filter.value));
    fill(list, shown.length === 0 ? el('p', { class: 'empty' }, 'No flag.')
      : paged('Flags', ['Name', 'State', 'Rollout', 'Targeting', 'Updated'], shown, row));
  }

  function row(flag) {
    return el('tr', { 'data-flag': flag.name },
      el('td', {}, el('a', { href: `#/flags/${seg(flag.name)}` }, flag.name)),
      el('td', {}, toggle(flag)),
      el('td', {}, rollout(flag)),
      el('td', {}, targeting(flag)),
      el('td', {}, when(flag.updated_at)));
  }

  function toggle(flag) {
    return el('button', {
      type: 'button', class: flag.enabled ? 'switch on' : 'switch', 'aria-pressed': String(flag.enabled),
      'aria-label': `${flag.name} enabled`,
      onclick: (click) => act(click.currentTarget, async () => {
        await call('PATCH', `/flags/${seg(flag.name)}`, { enabled: !flag.enabled });
        await refresh();
      }, `${flag.name} turned ${flag.enabled ? 'off' : 'on'}`),
    }, flag.enabled ? 'On' : 'Off');
  }

  function rollout(flag) {
    const percent = flag.percentage ?? 100;
    const output = el('output', {}, flag.percentage === undefined ? 'all' : `${percent}%`);
    const slider = el('input', {
      type: 'range', min: 0, max: 100, step: 1, value: percent, 'aria-label': `${flag.name} rollout percentage`,
      oninput: () => { output.textContent = `${slider.value}%`; },
      onchange: () => act(slider, async () => {
        await call('PUT', `/flags/${seg(flag.name)}`, { enabled: flag.enabled, percentage: Number(slider.value) });
        await refresh();
      }, `${flag.name} rolled out to ${slider.value}%`),
    });
    return el('span', { class: 'rollout' }, slider, output);
  }

  function targeting(flag) {
    const parts = [];
    if (flag.rules) parts.push(`${flag.rules.length} rule${flag.rules.length > 1 ? 's' : ''}`);
    if (flag.variants) parts.push(`${flag.variants.length} variant${flag.variants.length > 1 ? 's' : ''}`);
    if (flag.prerequisites) parts.push(`requires ${flag.prerequisites.map((p) => p.flag).join(', ')}`);
    return parts.join(' · ') || '—';
  }

  // The evaluation form outlives redraws of the flag above it: what is typed there stays.
  const subject = el('input', { name: 'subject', spellcheck: false, placeholder: 'user-42' });
  const context = el('textarea', { name: 'context', rows: 2, spellcheck: false, placeholder: '{"plan": "pro"}' });
  const result = el('div', { id: 'evaluation', 'aria-live': 'polite' });
  const evaluator = el('div', {},
    el('h4', {}, 'Evaluate'),
    el('form', { class: 'row', id: 'evaluate-form', onsubmit: evaluate },
      field('Subject', subject), field('Other context (JSON object)', context),
      el('button', { type: 'submit' }, 'Evaluate')),
    result);
  const state = el('div');

  // A rule of one constraint (or none: everyone), and the variants as JSON: the edits simple
  // enough for a form. Like the evaluation form, they outlive redraws.
  const property = el('input', { name: 'property', spellcheck: false, placeholder: 'plan' });
  const operator = el('select', { name: 'operator' }, OPERATORS.map((op) => el('option', { value: op }, op)));
  const values = el('input', { name: 'values', spellcheck: false, placeholder: 'pro, team' });
  const inverted = el('input', { name: 'inverted', type: 'checkbox' });
  const rulePercentage = el('input', { name: 'percentage', type: 'number', min: 0, max: 100, placeholder: '100' });
  const ruleSegments = el('input', { name: 'segments', spellcheck: false, placeholder: 'beta-testers' });
  const ruleForm = el('form', { id: 'rule-form', onsubmit: addRule },
    el('h4', {}, 'Add a rule'),
    el('div', { class: 'row' },
      field('Property', property), field('Operator', operator),
      field('Values (comma-separated)', values), field('Not', inverted),
      field('Segments', ruleSegments), field('Percentage', rulePercentage),
      el('button', { type: 'submit' }, 'Add rule')),
    el('p', { class: 'hint' }, 'Without a property the rule matches every context.'));
  const variants = el('textarea', { name: 'variants', rows: 4, spellcheck: false, class: 'code' });
  let variantsEdited = false;
  variants.addEventListener('input', () => { variantsEdited = true; });
  const variantsForm = el('form', { id: 'variants-form', onsubmit: setVariants },
    el('h4', {}, 'Variants'),
    field('As JSON', variants, '[{"name": "blue", "weight": 1, "payload": {"type": "string", "value": "blue"}}]; [] for none'),
    el('button', { type: 'submit' }, 'Save variants'));

  function drawDetail(flag) {
    if (!flag) { fill(detail); return; }
    if (!detail.firstChild) {
      fill(detail, el('section', { class: 'card', id: 'flag-detail' },
        el('h3', {}, `Flag ${flag.name}`), state, evaluator, ruleForm, variantsForm,
        el('p', {}, el('button', { type: 'button', class: 'danger', onclick: (click) => remove(click.currentTarget, flag) }, 'Delete flag'),
          ' ', el('a', { href: '#/flags' }, 'Close'))));
    }
    if (!variantsEdited) variants.value = JSON.stringify(flag.variants ?? [], null, 2);
    fill(state,
      el('p', {}, toggle(flag), ' ', rollout(flag)),
      el('h4', {}, 'Rules'),
      flag.rules ? el('ol', {}, flag.rules.map((rule, index) => el('li', {}, describeRule(rule), ' ',
        el('button', { type: 'button', class: 'danger small', onclick: (click) => removeRule(click.currentTarget, flag, index) }, 'Remove'))))
        : el('p', { class: 'empty' }, 'No rule: the flag answers the same for everyone it rolls out to.'),
      el('h4', {}, 'Variants'),
      flag.variants ? table('Variants', ['Name', 'Weight', 'Payload'], flag.variants.map((v) =>
        el('tr', {}, el('td', {}, v.name), el('td', { class: 'num' }, v.weight),
          el('td', {}, el('code', {}, v.payload ? JSON.stringify(v.payload.value) : '—')))))
        : el('p', { class: 'empty' }, 'No variant.'),
      flag.prerequisites && [el('h4', {}, 'Requires'), el('ul', {}, flag.prerequisites.map((p) =>
        el('li', {}, p.flag, p.variants ? ` (${p.variants.join(', ')})` : '')))]);
  }

  async function evaluate(submit) {
    submit.preventDefault();
    let extra = {};
    if (context.value.trim()) {
      try { extra = JSON.parse(context.value); } catch (error) { say(`Context: ${error.message}`, true); return; }
    }
    await act(submit.submitter, async () => {
      const body = { context: { ...extra, ...(subject.value ? { targetingKey: subject.value } : {}) } };
      const answer = await call('POST', `/flags/${seg(selected)}/evaluate`, body);
      fill(result, el('dl', { class: 'inline' },
        el('dt', {}, 'Value'), el('dd', { class: 'value' }, JSON.stringify(answer.value ?? null)),
        el('dt', {}, 'Variant'), el('dd', { class: 'variant' }, answer.variant ?? '—'),
        el('dt', {}, 'Reason'), el('dd', { class: 'reason' }, answer.reason)));
    });
  }

  async function addRule(submit) {
    submit.preventDefault();
    const rule = { constraints: [] };
    if (property.value) {
      rule.constraints.push({
        property: property.value,
        operator: operator.value,
        values: values.value.split(',').map((v) => v.trim()).filter((v) => v !== ''),
        inverted: inverted.checked,
      });
    }
    const segmentNames = ruleSegments.value.split(',').map((v) => v.trim()).filter((v) => v !== '');
    if (segmentNames.length) rule.segments = segmentNames;
    if (rulePercentage.value !== '') rule.percentage = Number(rulePercentage.value);
    await act(submit.submitter, async () => {
      await call('POST', `/flags/${seg(selected)}/rules`, rule);
      ruleForm.reset();
      await refresh();
    }, 'Rule added');
  }

  async function setVariants(submit) {
    submit.preventDefault();
    let list;
    try { list = JSON.parse(variants.value); } catch (error) { say(`Variants: ${error.message}`, true); return; }
    await act(submit.submitter, async () => {
      await call('PUT', `/flags/${seg(selected)}/variants`, { variants: list });
      variantsEdited = false;
      await refresh();
    }, 'Variants saved');
  }

  async function removeRule(button, flag, index) {
    if (!await confirmAction(`Remove rule ${index + 1} of “${flag.name}”?`)) return;
    await act(button, async () => {
      await call('DELETE', `/flags/${seg(flag.name)}/rules?index=${index}`);
      await refresh();
    }, 'Rule removed');
  }

  async function remove(button, flag) {
    if (!await confirmAction(`Delete the flag “${flag.name}”? Its rules and variants go with it.`)) return;
    await act(button, async () => {
      await call('DELETE', `/flags/${seg(flag.name)}`);
      location.hash = '#/flags';
    }, `Deleted ${flag.name}`);
  }

  const later = debounced(refresh, 200);
  refresh();
  return { refresh, onEvent: (event) => { if (event.kind === 'flag') later(); } };
}

/** Unleash's constraint operators, as the API names them. */
const OPERATORS = ['IN', 'NOT_IN', 'STR_CONTAINS', 'STR_STARTS_WITH', 'STR_ENDS_WITH',
  'NUM_EQ', 'NUM_GT', 'NUM_GTE', 'NUM_LT', 'NUM_LTE', 'DATE_BEFORE', 'DATE_AFTER',
  'SEMVER_EQ', 'SEMVER_GT', 'SEMVER_LT'];

function constraint(c) {
  return `${c.property} ${c.inverted ? 'not ' : ''}${c.operator} ${c.values.join(', ')}${c.case_insensitive ? ' (any case)' : ''}`;
}

function describeRule(rule) {
  const parts = rule.constraints.map(constraint);
  if (rule.segments) parts.push(...rule.segments.map((s) => `in segment ${s}`));
  const when = parts.length ? parts.join(' and ') : 'everyone';
  return `${when} → ${rule.percentage ?? 100}%`;
}
