// The dashboard's shell: hash routes (#/overview, #/log, #/models, #/charts,
// #/explorer?user=…), the token field, the refusal banner and the
// confirmation dialog. Pages are in pages.js and explorer.js.

import { onRefused, setToken, token } from './api.js';
import { explorer } from './explorer.js';
import { charts, log, models, overview } from './pages.js';

const PAGES = { overview, log, models, charts, explorer };

const page = document.getElementById('page');
const banner = document.getElementById('banner');
let timers = [];

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

onRefused((error) => {
  showBanner(
    token()
      ? `The server refused the token (${error.status} ${error.title}) for ${error.method} ${error.path}: check it and press Use.`
      : `This server needs a token (${error.status} ${error.title} for ${error.method} ${error.path}): enter it above and press Use.`,
  );
});

function confirmDialog(title, text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
  });
}

function route() {
  for (const id of timers) clearInterval(id);
  timers = [];
  const hash = location.hash.replace(/^#\/?/, '');
  const [name, query = ''] = hash.split('?');
  const current = PAGES[name] ? name : 'overview';
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('current', link.dataset.page === current);
  document.title = `recwal · ${PAGES[current].title}`;
  showBanner('');
  page.replaceChildren();
  page.dataset.page = current;
  const ctx = {
    query,
    every(ms, fn) {
      timers.push(setInterval(fn, ms));
    },
    confirm: confirmDialog,
    navigate(to) {
      if (location.hash === `#/${to}`) route();
      else location.hash = `#/${to}`;
    },
  };
  PAGES[current].render(page, ctx);
}

function showTokenState() {
  document.getElementById('token-state').textContent = token() ? 'token set' : 'no token';
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const field = document.getElementById('token');
  setToken(field.value.trim());
  field.value = '';
  showTokenState();
  route();
});
// Forgetting keeps the page as it is: its next call goes without a token
// (and is refused, visibly, where the server needs one).
document.getElementById('token-forget').addEventListener('click', () => {
  setToken('');
  document.getElementById('token').value = '';
  showTokenState();
});

window.addEventListener('hashchange', route);
showTokenState();
route();
