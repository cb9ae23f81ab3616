// The API client of the dashboard: every call carries the token kept in
// sessionStorage (never localStorage: it goes when the tab closes), and every
// refusal is reported (thrown, and shown in the banner for 401/403).

const TOKEN_KEY = 'recwal.token';

/** The server's base path: the page is /ui/ under it (a proxy may add a prefix). */
export const base = location.pathname.replace(/\/ui(\/.*)?$/, '');

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer the API refused (or a network failure: status 0). */
export class ApiError extends Error {
  constructor(status, title, detail, method, path) {
    super(`${method} ${path}: ${status ? status + ' ' : ''}${title}${detail ? ': ' + detail : ''}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.method = method;
    this.path = path;
  }

  get refused() {
    return this.status === 401 || this.status === 403;
  }
}

const refusalListeners = [];

/** `listener(error)` is called for every 401/403. */
export function onRefused(listener) {
  refusalListeners.push(listener);
}

/**
 * Calls the API. Resolves with `{status, data}` (JSON parsed when the answer
 * is JSON); rejects with an ApiError unless the status is 2xx or in `allow`.
 */
export async function call(method, path, { body, contentType, allow = [] } = {}) {
  const headers = {};
  const secret = token();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined && contentType) headers['Content-Type'] = contentType;
  let response;
  try {
    response = await fetch(base + path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    throw new ApiError(0, 'the server did not answer', String(err && err.message || err), method, path);
  }
  const text = await response.text();
  let data = text;
  if ((response.headers.get('content-type') || '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      // Not JSON after all: keep the text.
    }
  }
  if (response.ok || allow.includes(response.status)) return { status: response.status, data };
  const problem = data && typeof data === 'object' ? data : {};
  const error = new ApiError(
    response.status,
    problem.title || response.statusText || 'error',
    problem.detail || (typeof data === 'string' ? data.slice(0, 500) : ''),
    method,
    path,
  );
  if (error.refused) for (const listener of refusalListeners) listener(error);
  throw error;
}

/** GET, JSON. */
export async function get(path, options) {
  return (await call('GET', path, options)).data;
}

/** An element: h('td', {class: 'num'}, 'text', child…). Text is never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A two-column table of [label, value] rows. */
export function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.map(([label, value]) => h('tr', {}, h('th', {}, label), h('td', {}, value)))));
}

/** A table with a header row; `rows` are arrays of cells (nodes or text). */
export function table(columns, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    h('thead', {}, h('tr', {}, columns.map((column) => h('th', { class: column.endsWith('#') ? 'num' : null }, column.replace(/#$/, ''))))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, at) => h('td', { class: columns[at].endsWith('#') ? 'num' : null }, cell))))),
  );
}

/** A coloured badge: kind is 'ok', 'warn' or 'bad'. */
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

/** A message box for an action's result or an error. */
export function message(text, kind) {
  return h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** The error as shown on a page: refusals say what to do. */
export function errorBox(error) {
  if (error instanceof ApiError && error.refused) {
    return message(`Refused (${error.status} ${error.title}): ${error.method} ${error.path}. ${error.detail} — enter the token above.`, 'error');
  }
  return message(String(error && error.message || error), 'error');
}

export function fmtInt(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString('en-US');
}

export function fmtBytes(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let at = 0;
  let scaled = Number(value);
  while (scaled >= 1024 && at < units.length - 1) {
    scaled /= 1024;
    at += 1;
  }
  return `${at === 0 ? scaled : scaled.toFixed(1)} ${units[at]}`;
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  if (seconds < 1e-3) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function fmtTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** Any JSON value as short text. */
export function fmtValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
