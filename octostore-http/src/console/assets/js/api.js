// The JSON API on this origin, with the token as a bearer header (never a cookie), and the
// change stream read with fetch: EventSource cannot send the header.

const KEY = 'octostore.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An answer that is not a success, with the API's `error` (and `details`) as its message. */
class ApiError extends Error {
  constructor(status, body) {
    const text = body && body.error ? body.error + (body.details ? `: ${body.details}` : '') : `HTTP ${status}`;
    super(text);
    this.status = status;
    this.body = body;
  }
}

/** Called with no argument when the token is refused (401). */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

/** `method path` with `body` as JSON; resolves to the JSON answer, or rejects with ApiError. */
export async function call(method, path, body, headers = {}) {
  const answer = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token.get()}`,
      Accept: 'application/json',
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await answer.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (answer.status === 401) onUnauthorized();
  if (!answer.ok) throw new ApiError(answer.status, json);
  return json;
}

export const get = (path) => call('GET', path);

/** A path segment: names may hold any character but controls. */
export const seg = encodeURIComponent;

/**
 * Follows the change log from now on: `onEvent(event)` for each event, `onResync()` when the
 * log lost events the page had not seen, `onState(live)` as the stream comes and goes. Reads
 * the Server-Sent Events of GET /events with fetch; after a failure it goes on from the last
 * event seen. Returns a function that stops it.
 */
export function follow({ onEvent, onResync, onState }) {
  const controller = new AbortController();
  let last = null;
  (async () => {
    // An index past the log's end is answered with a resync to its newest: start there.
    const start = await get(`/events?since=${Number.MAX_SAFE_INTEGER}&limit=1`).catch(() => null);
    last = start ? start.next : 0;
    while (!controller.signal.aborted) {
      try {
        await stream(last, controller.signal, onState, (id, kind, data) => {
          last = id;
          if (kind === 'resync') onResync();
          else onEvent(JSON.parse(data));
        });
      } catch {
        // Gone or refused: tried again below, from the last event seen.
      }
      if (controller.signal.aborted) return;
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
  return () => controller.abort();
}

async function stream(since, signal, onState, dispatch) {
  const answer = await fetch(`/events?since=${since}`, {
    headers: { Authorization: `Bearer ${token.get()}`, Accept: 'text/event-stream' },
    credentials: 'omit',
    cache: 'no-store',
    signal,
  });
  if (answer.status === 401) { onUnauthorized(); return; }
  if (!answer.ok || !answer.body) throw new ApiError(answer.status, null);
  onState(true);
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = since; let kind = 'message'; const data = [];
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon === 0) continue;
        const name = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (name === 'id') id = Number(text);
        else if (name === 'event') kind = text;
        else if (name === 'data') data.push(text);
      }
      if (data.length) dispatch(id, kind, data.join('\n'));
    }
  }
}
