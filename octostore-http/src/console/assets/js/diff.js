// A line diff for the side-by-side view of two config versions: the longest common
// subsequence of lines (after the common head and tail are set aside), then the runs of
// removed and added lines paired up as changed rows.

/**
 * The rows of a side-by-side diff of `a` and `b` (arrays of lines): each row is
 * `{ kind, left, right }`, `kind` one of `same`, `removed`, `added`, `changed`, and a side
 * that has no line `null`.
 */
export function sideBySide(a, b) {
  return pair(edits(a, b));
}

/** The edit script: `[op, line]` with op `=`, `-` or `+`. */
function edits(a, b) {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head
    && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  // lcs[i][j]: the longest common subsequence of x[i..] and y[j..].
  const lcs = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const script = a.slice(0, head).map((line) => ['=', line]);
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) { script.push(['=', x[i]]); i++; j++; }
    else if (i < x.length && (j === y.length || lcs[i + 1][j] >= lcs[i][j + 1])) { script.push(['-', x[i]]); i++; }
    else { script.push(['+', y[j]]); j++; }
  }
  script.push(...a.slice(a.length - tail).map((line) => ['=', line]));
  return script;
}

function pair(script) {
  const rows = [];
  let removed = [];
  let added = [];
  const flush = () => {
    for (let k = 0; k < Math.max(removed.length, added.length); k++) {
      const left = removed[k] ?? null;
      const right = added[k] ?? null;
      const kind = left === null ? 'added' : right === null ? 'removed' : 'changed';
      rows.push({ kind, left, right });
    }
    removed = [];
    added = [];
  };
  for (const [op, line] of script) {
    if (op === '-') removed.push(line);
    else if (op === '+') added.push(line);
    else { flush(); rows.push({ kind: 'same', left: line, right: line }); }
  }
  flush();
  return rows;
}
