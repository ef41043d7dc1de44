// The console's shell: sign-in, the sections (#/locks, #/flags, #/config, #/limits) and the
// change stream, whose events go to the section on screen.

import { token, get, follow, whenUnauthorized } from './api.js';
import { fill, say } from './dom.js';
import * as locks from './locks.js';
import * as flags from './flags.js';
import * as config from './config.js';
import * as limits from './limits.js';

const sections = { locks, flags, config, limits };
const $ = (id) => document.getElementById(id);

let current = null;
let stopFollowing = null;
let polling = null;

/** How often the section on screen is read again while the change stream is down (ms). */
const POLL_EVERY = 5000;

function signedIn() {
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('session').hidden = false;
  stopFollowing ||= follow({
    onEvent: (event) => current?.onEvent?.(event),
    onResync: () => current?.refresh?.(),
    onState: (live) => {
      $('live').textContent = live ? 'live' : 'offline';
      $('live').classList.toggle('on', live);
      // Without the stream, the section on screen is read again every few seconds.
      clearInterval(polling);
      if (!live) polling = setInterval(() => current?.refresh?.(), POLL_EVERY);
    },
  });
  show();
}

function signedOut(message) {
  token.clear();
  stopFollowing?.();
  stopFollowing = null;
  clearInterval(polling);
  current?.stop?.();
  current = null;
  fill($('view'));
  $('nav').hidden = true;
  $('session').hidden = true;
  $('sign-in').hidden = false;
  $('github').hidden = document.querySelector('meta[name="octostore-github"]').content !== 'on';
  if (message) say(message, true);
  $('token').focus();
}

/** Shows the section the address names (locks by default). */
function show() {
  if (!token.get()) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const section = sections[name] ? name : 'locks';
  current?.stop?.();
  for (const link of $('nav').querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${section}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const view = fill($('view'));
  view.dataset.section = section;
  current = sections[section].mount(view, rest.map(decodeURIComponent).join('/'));
}

$('token-form').addEventListener('submit', async (submit) => {
  submit.preventDefault();
  token.set($('token').value.trim());
  $('token').value = '';
  try {
    // Any authenticated read tells whether the token is good.
    await get('/locks');
    signedIn();
  } catch (error) {
    signedOut(error.status === 401 ? 'That token was refused.' : error.message);
  }
});
$('sign-out').addEventListener('click', () => signedOut());
window.addEventListener('hashchange', show);
whenUnauthorized(() => signedOut('The token was refused: sign in again.'));

if (token.get()) signedIn();
else signedOut();
