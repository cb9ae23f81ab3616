// The recommendation explorer: a user's answer from every strategy, with
// the reasons the engine gives for each item, and the interactions behind it.

import { ApiError, badge, call, errorBox, fmtInt, get, h, table } from './api.js';

const STRATEGIES = ['blend', 'user_cf', 'item_rank', 'item_rank_exact', 'popularity', 'ease', 'ials'];
const RECENT_KEY = 'recwal.recent-users';

function recentUsers() {
  try {
    const list = JSON.parse(sessionStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(list) ? list.filter((user) => typeof user === 'string') : [];
  } catch (_) {
    return [];
  }
}

function remember(user) {
  const list = [user, ...recentUsers().filter((other) => other !== user)].slice(0, 20);
  sessionStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

/** One reason as a sentence. */
export function reasonText(reason) {
  switch (reason.kind) {
    case 'neighbour':
      return `similar user ${reason.user} (similarity ${Number(reason.similarity).toFixed(3)}) interacted with it: contributes ${Number(reason.contribution).toFixed(3)}`;
    case 'co_interacted':
      return `${fmtInt(reason.users)} user(s) who interacted with ${reason.item} (in this user's history) also interacted with it`;
    case 'popular':
      return `popular: ${fmtInt(reason.events)} events`;
    case 'item_weight':
      return `the learned item model links it to ${reason.item} (in this user's history): contributes ${Number(reason.contribution).toFixed(3)}`;
    default:
      return JSON.stringify(reason);
  }
}

function rankingText(ranking) {
  if (!ranking) return '';
  if (ranking.kind === 'model') return badge(`ranked by model v${ranking.version}`, 'ok');
  if (ranking.kind === 'degraded') return badge(`model v${ranking.version} skipped: ${ranking.reason}`, 'warn');
  return badge(ranking.reason ? `not ranked: ${ranking.reason}` : 'strategy order', '');
}

function answerCard(strategy, answer) {
  const head = h('h2', {}, strategy, ' ', answer.cold_start ? badge('cold start: popular items', 'warn') : null, ' ', rankingText(answer.ranking));
  const body = answer.items.length
    ? table(
        ['#', 'item', 'score#', 'model score#', 'placed by', 'reasons'],
        answer.items.map((item, at) => [
          String(at + 1),
          h('code', { class: 'item' }, item.item),
          Number(item.score).toFixed(4),
          item.model_score === null || item.model_score === undefined ? '—' : Number(item.model_score).toFixed(4),
          item.strategy,
          item.reasons && item.reasons.length ? h('ul', { class: 'reasons' }, item.reasons.map((reason) => h('li', {}, reasonText(reason)))) : h('span', { class: 'muted' }, 'none given'),
        ]),
      )
    : h('p', { class: 'muted' }, 'No items.');
  return h('section', { class: 'card wide answer', 'data-strategy': strategy }, head, h('p', { class: 'muted' }, `as of LSN ${fmtInt(answer.lsn)}`), body);
}

export const explorer = {
  title: 'Explorer',
  render(root, ctx) {
    const params = new URLSearchParams(ctx.query);
    const user = h('input', { id: 'explore-user', list: 'recent-users', placeholder: 'user id', required: true, value: params.get('user') || '' });
    const n = h('input', { id: 'explore-n', type: 'number', min: 1, max: 100, value: params.get('n') || 10 });
    const recent = h('datalist', { id: 'recent-users' }, recentUsers().map((id) => h('option', { value: id })));
    const out = h('div', { id: 'explore-out' });
    const form = h('form', { class: 'row', id: 'explore-form' },
      h('label', { for: 'explore-user' }, 'User'), user, recent,
      h('label', { for: 'explore-n' }, 'n'), n,
      h('button', { type: 'submit', class: 'primary', id: 'explore-go' }, 'Show'));
    root.append(h('h1', {}, 'Recommendation explorer'), form, out);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const id = user.value.trim();
      if (!id) return;
      // Keeps the view in the address (shareable, survives a reload).
      ctx.navigate(`explorer?${new URLSearchParams({ user: id, n: n.value })}`);
    });
    const id = (params.get('user') || '').trim();
    if (id) show(out, id, Math.max(1, Number(params.get('n')) || 10));
    else out.append(h('p', { class: 'muted' }, 'Type a user id (recent ones are offered) and press Show.'));
  },
};

async function show(out, user, n) {
  out.replaceChildren(h('p', { class: 'muted', id: 'explore-loading' }, `loading ${user}…`));
  const path = encodeURIComponent(user);
  const interactions = h('section', { class: 'card wide', id: 'interactions' }, h('h2', {}, 'Interactions behind it'));
  const answers = h('div', { class: 'grid', id: 'answers' });
  try {
    const results = await Promise.all(
      STRATEGIES.map((strategy) => get(`/v1/users/${path}/recommend?${new URLSearchParams({ n: String(n), strategy })}`)),
    );
    // A cold start means no interactions (an unknown user, or none left):
    // not asked for, as the server would answer an unknown user 404 (which
    // is still taken as an answer, should the user vanish in between).
    const history = results.every((answer) => answer.cold_start)
      ? { status: 404 }
      : await call('GET', `/v1/users/${path}/interactions`, { allow: [404] });
    remember(user);
    if (history.status === 404) {
      interactions.append(h('p', { class: 'muted', id: 'no-interactions' }, `The engine has no interactions of ${user}: an unknown user, or none left; the answers are popular items.`));
    } else {
      const list = history.data.interactions || [];
      interactions.append(table(['item', 'events#', 'value#', 'rating#'], list.map((row) => [
        h('code', { class: 'item' }, row.item), fmtInt(row.events), Number(row.value).toFixed(3), row.rating === null || row.rating === undefined ? '—' : String(row.rating),
      ]), { id: 'interaction-table' }));
    }
    results.forEach((answer, at) => answers.append(answerCard(STRATEGIES[at], answer)));
    out.replaceChildren(h('h2', { id: 'explore-user-title' }, `User ${user}`), interactions, answers);
  } catch (error) {
    out.replaceChildren(errorBox(error));
  }
}

export { ApiError };
