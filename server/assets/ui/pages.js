// The pages: overview, log, models and live charts (the explorer is in
// explorer.js). Each `render(root, ctx)` fills `root`; `ctx.every(ms, fn)`
// repeats `fn` while the page is shown, `ctx.confirm(title, text)` asks.

import { ApiError, badge, call, errorBox, fmtBytes, fmtInt, fmtSeconds, fmtTime, fmtValue, get, h, kv, message, table } from './api.js';
import { lineChart } from './chart.js';
import * as prom from './prom.js';

/** Runs `load` into `box` now and every `ms`; an error is shown in the box, never swallowed. */
function live(ctx, box, ms, load) {
  const run = async () => {
    try {
      box.replaceChildren(...[await load()].flat());
    } catch (error) {
      box.replaceChildren(errorBox(error));
    }
  };
  ctx.every(ms, run);
  return run();
}

function card(title, body, wide) {
  return h('section', { class: wide ? 'card wide' : 'card' }, h('h2', {}, title), body);
}

// ---------------------------------------------------------------- overview

export const overview = {
  title: 'Overview',
  render(root, ctx) {
    const health = h('div', { id: 'health' }, 'loading…');
    const ready = h('div', { id: 'readiness' }, 'loading…');
    const stats = h('div', { id: 'stats' }, 'loading…');
    root.append(
      h('h1', {}, 'Overview'),
      h('div', { class: 'grid' }, card('Health', health), card('Readiness', ready), card('Engine', stats)),
    );
    live(ctx, health, 5000, async () => {
      const body = await get('/healthz');
      return kv([['process', badge(body.status || 'alive', 'ok')], ['checked', new Date().toLocaleTimeString()]]);
    });
    live(ctx, ready, 5000, async () => {
      // 503 is an answer here (not ready, with reasons), not a failure.
      const { data } = await call('GET', '/readyz', { allow: [503] });
      const rows = [['ready', data.ready ? badge('ready', 'ok') : badge('not ready', 'bad')]];
      rows.push(['reasons', data.reasons && data.reasons.length ? h('ul', { class: 'reasons', id: 'ready-reasons' }, data.reasons.map((r) => h('li', {}, r))) : h('span', { class: 'muted' }, 'none')]);
      if (data.replay) rows.push(['replay', `${fmtInt(data.replay.records_done)} of ${fmtInt(data.replay.records_total)} records`]);
      if (data.records_replayed !== undefined) rows.push(['records replayed at start', fmtInt(data.records_replayed)]);
      if (data.disk_full) rows.push(['disk full', `${data.disk_full.what}: ${data.disk_full.detail} (${data.disk_full.path})`]);
      if (data.model) {
        const model = data.model;
        rows.push(['active model', model.active === null || model.active === undefined ? 'none' : `v${model.active}`]);
        rows.push(['serving model', model.serving === null || model.serving === undefined ? 'none (answers are not ranked)' : `v${model.serving}`]);
        if (model.fault) rows.push(['model fault', badge(model.fault, 'bad')]);
        if (model.breaker) rows.push(['breaker', breakerBadge(model.breaker)]);
        if (model.runtime) rows.push(['ONNX Runtime', model.runtime.loaded ? badge('loaded', 'ok') : h('span', {}, badge('not loaded', 'warn'), ' ', model.runtime.reason || '')]);
      }
      return kv(rows);
    });
    live(ctx, stats, 5000, async () => {
      const s = await get('/admin/stats');
      return kv([
        ['users', fmtInt(s.users)],
        ['items', fmtInt(s.items)],
        ['catalogue items', fmtInt(s.catalogue_items)],
        ['user–item pairs', fmtInt(s.pairs)],
        ['events applied', fmtInt(s.events_applied)],
        ['applied LSN', fmtInt(s.applied_lsn)],
        ['snapshot LSN', fmtInt(s.snapshot_lsn)],
        ['dedup ids', fmtInt(s.dedup_ids)],
        ['uptime', fmtSeconds(s.uptime_s)],
      ]);
    });
  },
};

function breakerBadge(state) {
  return badge(state, state === 'closed' ? 'ok' : state === 'open' ? 'bad' : 'warn');
}

// ---------------------------------------------------------------- log

export const log = {
  title: 'Log',
  render(root, ctx) {
    const wal = h('div', { id: 'wal' }, 'loading…');
    const disk = h('div', { id: 'disk' }, 'loading…');
    const checkpoint = h('div', { id: 'checkpoint-state' }, 'loading…');
    const recovery = h('div', { id: 'recovery' }, 'loading…');
    const result = h('div', { id: 'checkpoint-result' });
    const button = h('button', { id: 'checkpoint', class: 'primary', type: 'button' }, 'Checkpoint now…');
    root.append(
      h('h1', {}, 'Log'),
      h('div', { class: 'grid' },
        card('Watermarks and syncs', wal),
        card('Disk', disk),
        card('Checkpoints', h('div', {}, checkpoint, h('div', { class: 'row' }, button), result)),
        card('Start-up recovery and replay', recovery)),
    );
    let state = {};
    const refresh = async () => {
      try {
        const [walBody, text] = await Promise.all([get('/admin/wal'), get('/metrics')]);
        state = { wal: walBody, metrics: prom.parse(typeof text === 'string' ? text : '') };
        renderLog(state, { wal, disk, checkpoint, recovery });
      } catch (error) {
        for (const box of [wal, disk, checkpoint, recovery]) box.replaceChildren(errorBox(error));
      }
    };
    ctx.every(3000, refresh);
    refresh();
    button.addEventListener('click', async () => {
      const ok = await ctx.confirm('Checkpoint', 'Write a snapshot of the state now and release the log behind it?');
      if (!ok) return;
      button.disabled = true;
      try {
        const { data } = await call('POST', '/admin/checkpoint');
        result.replaceChildren(message(`Snapshot at LSN ${fmtInt(data.lsn)}${data.bytes ? `, ${fmtBytes(data.bytes)}` : ''}; ${fmtInt(data.segments_released)} segment(s) released.`, 'ok'));
      } catch (error) {
        result.replaceChildren(errorBox(error));
      } finally {
        button.disabled = false;
        refresh();
      }
    });
  },
};

function renderLog({ wal: w, metrics: m }, boxes) {
  const syncBuckets = prom.buckets(m, 'recwal_wal_sync_latency_us');
  const us = (v) => (v === null ? '—' : fmtSeconds(v / 1e6));
  boxes.wal.replaceChildren(kv([
    ['LSN written', fmtInt(w.lsn_written)],
    ['LSN appended', fmtInt(w.lsn_appended)],
    ['LSN durable (watermark)', h('span', { id: 'lsn-durable' }, fmtInt(w.lsn_durable))],
    ['not yet durable', fmtInt(Math.max(0, w.lsn_appended - w.lsn_durable)) + ' records'],
    ['LSN released', fmtInt(w.lsn_released)],
    ['records / bytes appended', `${fmtInt(w.records_appended)} / ${fmtBytes(w.bytes_appended)}`],
    ['syncs', fmtInt(w.syncs)],
    ['sync failures', w.sync_failures ? badge(fmtInt(w.sync_failures), 'bad') : badge('0', 'ok')],
    ['sync latency p50 / p99 (since start)', `${us(w.sync_latency_us_p50)} / ${us(w.sync_latency_us_p99)}`],
    ['sync latency p50 / p99 (histogram)', `${us(prom.quantile(0.5, syncBuckets))} / ${us(prom.quantile(0.99, syncBuckets))}`],
    ['staged bytes', fmtBytes(prom.value(m, 'recwal_wal_staged_bytes'))],
    ['full-ring waits / refusals', `${fmtInt(prom.value(m, 'recwal_wal_full_waits_total'))} / ${fmtInt(prom.value(m, 'recwal_wal_full_errors_total'))}`],
  ]));
  const used = w.disk_bytes;
  const bound = w.disk_bytes_max;
  const avail = prom.value(m, 'recwal_data_dir_fs_avail_bytes');
  const size = prom.value(m, 'recwal_data_dir_fs_size_bytes');
  boxes.disk.replaceChildren(kv([
    ['segments live / free / max', `${fmtInt(w.segments_live)} / ${fmtInt(w.segments_free)} / ${fmtInt(w.segments_max)}`],
    ['segment size', fmtBytes(w.segment_bytes)],
    ['log on disk', h('span', { id: 'disk-use' }, `${fmtBytes(used)} of at most ${fmtBytes(bound)}`)],
    ['', used !== undefined && bound ? h('progress', { max: bound, value: used, title: `${((100 * used) / bound).toFixed(1)}% of the bound` }) : '—'],
    ['segments created / recycled', `${fmtInt(prom.value(m, 'recwal_wal_segments_created_total'))} / ${fmtInt(prom.value(m, 'recwal_wal_segments_recycled_total'))}`],
    ['data dir filesystem free', avail === null ? '—' : `${fmtBytes(avail)} of ${fmtBytes(size)}`],
    ['disk full', prom.value(m, 'recwal_disk_full') ? badge('yes: writes refused', 'bad') : badge('no', 'ok')],
  ]));
  const snapshotAt = prom.value(m, 'recwal_snapshot_timestamp_seconds');
  const failures = prom.value(m, 'recwal_checkpoint_failures_total');
  boxes.checkpoint.replaceChildren(kv([
    ['last snapshot LSN', h('span', { id: 'snapshot-lsn' }, fmtInt(prom.value(m, 'recwal_snapshot_lsn')))],
    ['last snapshot written', snapshotAt === null ? 'none yet' : `${fmtTime(snapshotAt * 1000)} (${fmtSeconds(Date.now() / 1000 - snapshotAt)} ago)`],
    ['records since the snapshot', fmtInt(Math.max(0, (prom.value(m, 'recwal_applied_lsn') || 0) - (prom.value(m, 'recwal_snapshot_lsn') || 0)))],
    ['automatic checkpoint failures', failures ? badge(fmtInt(failures), 'bad') : badge('0', 'ok')],
  ]));
  const r = w.recovery || {};
  const replaying = prom.value(m, 'recwal_replaying');
  const done = prom.value(m, 'recwal_replay_records_done');
  const total = prom.value(m, 'recwal_replay_records_total');
  boxes.recovery.replaceChildren(kv([
    ['replay', replaying ? h('span', {}, badge('replaying', 'warn'), ` ${fmtInt(done)} of ${fmtInt(total)}`) : badge('done', 'ok')],
    ['replay progress', total ? h('progress', { max: total, value: done || 0 }) : `${fmtInt(r.records_replayed)} records replayed`],
    ['replay took', fmtSeconds(prom.value(m, 'recwal_replay_seconds'))],
    ['started from snapshot LSN', fmtInt(r.snapshot_lsn)],
    ['clean start', r.clean ? badge('clean', 'ok') : badge('repaired or cut: see the log', 'warn')],
    ['records recovered / dropped / missing', `${fmtInt(r.records_recovered)} / ${fmtInt(r.records_dropped)} / ${fmtInt(r.records_missing)}`],
    ['bytes cut', fmtInt(r.bytes_cut)],
    ['tail damage', fmtValue(r.tail_damage)],
    ['corruption', fmtValue(r.corruption)],
    ['snapshots skipped', r.snapshots_skipped && r.snapshots_skipped.length ? r.snapshots_skipped.join('; ') : 'none'],
  ]));
}

// ---------------------------------------------------------------- models

export const models = {
  title: 'Models',
  render(root, ctx) {
    const status = h('div', { id: 'model-status' }, 'loading…');
    const list = h('div', { id: 'model-list' }, 'loading…');
    const result = h('div', { id: 'model-result' });
    const rollback = h('button', { id: 'rollback', type: 'button' }, 'Roll back…');
    const refresh = h('button', { id: 'models-refresh', type: 'button' }, 'Refresh');
    root.append(
      h('h1', {}, 'Models'),
      h('div', { class: 'row' }, rollback, refresh),
      result,
      h('div', { class: 'grid' }, card('Status', status), card('Versions', list, true)),
    );
    const load = async () => {
      try {
        const [body, st] = await Promise.all([get('/admin/models'), get('/admin/models/status')]);
        status.replaceChildren(renderStatus(st));
        list.replaceChildren(renderVersions(body.models || [], activate));
      } catch (error) {
        status.replaceChildren(errorBox(error));
        list.replaceChildren(errorBox(error));
      }
    };
    const act = async (title, question, method, path, done) => {
      if (!(await ctx.confirm(title, question))) return;
      result.replaceChildren(message(`${title}…`, 'ok'));
      try {
        const { data } = await call(method, path);
        result.replaceChildren(message(done(data), 'ok'));
      } catch (error) {
        result.replaceChildren(errorBox(error));
      }
      await load();
    };
    const activate = (version) =>
      act('Activate', `Activate model version ${version}? Answers are ranked by it from the next request on.`, 'POST', `/admin/models/${version}/activate`,
        (data) => `Version ${data && data.version !== undefined ? data.version : version} is active.`);
    rollback.addEventListener('click', () =>
      act('Roll back', 'Roll back to the previously active model version?', 'POST', '/admin/models/rollback',
        (data) => `Rolled back: version ${data && data.version !== undefined ? data.version : '?'} is active.`));
    refresh.addEventListener('click', load);
    load();
  },
};

function renderStatus(st) {
  const runtime = st.runtime && typeof st.runtime === 'object'
    ? ('Ok' in st.runtime ? h('span', {}, badge('loaded', 'ok'), ' ', h('code', {}, st.runtime.Ok)) : h('span', {}, badge('not loaded', 'warn'), ' ', st.runtime.Err))
    : fmtValue(st.runtime);
  const counts = st.breaker_counts;
  return kv([
    ['active version', h('span', { id: 'active-version' }, st.active === null || st.active === undefined ? 'none' : String(st.active))],
    ['serving version', st.serving === null || st.serving === undefined ? 'none (answers are not ranked)' : String(st.serving)],
    ['device', fmtValue(st.device)],
    ['fault', st.fault ? badge(st.fault, 'bad') : badge('none', 'ok')],
    ['breaker', h('span', { id: 'breaker' }, st.breaker ? breakerBadge(st.breaker) : 'no serving version')],
    ['breaker opened / failures / skipped', counts ? `${fmtInt(counts.opened)} / ${fmtInt(counts.failures)} / ${fmtInt(counts.skipped)}` : '—'],
    ['canary', h('span', { id: 'canary' }, routeText(st.canary, true))],
    ['shadow', h('span', { id: 'shadow' }, routeText(st.shadow, false))],
    ['route fault', st.route_fault ? badge(st.route_fault, 'bad') : badge('none', 'ok')],
    ['versions loaded', fmtInt(st.loaded_versions)],
    ['ONNX Runtime', runtime],
  ]);
}

// A canary or shadow from /admin/models/status (docs/MODELS.md).
function routeText(route, canary) {
  if (!route) return 'none';
  const share = canary && route.percent !== null && route.percent !== undefined ? ` for ${route.percent}% of users` : '';
  return `v${route.version}${share}${route.loaded ? '' : ' (not loaded: see the route fault)'}`;
}

function renderVersions(list, activate) {
  if (!list.length) return h('p', { class: 'muted' }, 'No model versions yet: upload one with POST /admin/models or `recwal models add`.');
  return table(
    ['version#', 'state', 'added', 'size#', 'sha256', 'activations#', ''],
    list.map((model) => [
      String(model.version),
      model.active ? badge('active', 'ok') : model.retired ? badge('retired', 'warn') : badge('available', ''),
      fmtTime(model.added_ms),
      fmtBytes(model.bytes),
      h('code', { title: model.sha256 }, String(model.sha256 || '').slice(0, 16) + '…'),
      fmtInt((model.activations || []).length),
      h('button', { type: 'button', class: 'activate', 'data-version': model.version, disabled: model.active || model.retired, onclick: () => activate(model.version) }, 'Activate…'),
    ]),
    { id: 'versions' },
  );
}

// ---------------------------------------------------------------- charts

const WINDOW_MS = 180000;
const perSecond = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1));
const HTTP = 'recwal_http_request_duration_seconds';

export const charts = {
  title: 'Live charts',
  render(root, ctx) {
    const rates = h('div', { id: 'chart-rates' });
    const latency = h('div', { id: 'chart-latency' });
    const events = h('div', { id: 'chart-events' });
    const sync = h('div', { id: 'chart-sync' });
    const routes = h('div', { id: 'route-table' }, 'collecting: rates need two readings (2 s)…');
    const status = h('div', { id: 'charts-status' });
    const pick = h('select', { id: 'latency-route' }, h('option', { value: '' }, 'all routes'));
    root.append(
      h('h1', {}, 'Live charts'),
      h('p', { class: 'muted' }, 'GET /metrics every 2 s; rates are differences of counters, latencies interpolated from the histogram buckets observed in each interval.'),
      status,
      h('div', { class: 'grid' },
        card('Requests per second, by route', rates),
        card(h('span', {}, 'HTTP latency ', pick), latency),
        card('Events applied per second', events),
        card('Log sync latency', sync),
        card('Routes (last interval)', routes, true)),
    );
    const samples = [];
    const draw = () => {
      const now = Date.now();
      const pairs = samples.slice(1).map((sample, at) => [samples[at], sample]);
      const routeNames = new Set();
      for (const sample of samples) for (const route of sample.routes.keys()) routeNames.add(route);
      for (const route of routeNames) {
        if (![...pick.options].some((option) => option.value === route)) pick.append(h('option', { value: route }, route));
      }
      const rateOf = (route) => pairs.map(([a, b]) => [b.t, prom.rate(b.routes.get(route) ?? 0, a.routes.get(route) ?? 0, (b.t - a.t) / 1000)]);
      const latest = pairs.length ? pairs[pairs.length - 1] : null;
      const ranked = [...routeNames].sort((x, y) => {
        if (!latest) return x.localeCompare(y);
        const rx = (latest[1].routes.get(x) ?? 0) - (latest[0].routes.get(x) ?? 0);
        const ry = (latest[1].routes.get(y) ?? 0) - (latest[0].routes.get(y) ?? 0);
        return ry - rx || x.localeCompare(y);
      });
      const total = pairs.map(([a, b]) => [b.t, prom.rate(b.total, a.total, (b.t - a.t) / 1000)]);
      lineChart(rates, [{ name: 'all', points: total }, ...ranked.slice(0, 6).map((route) => ({ name: route, points: rateOf(route) }))],
        { format: perSecond, windowMs: WINDOW_MS, now });
      const route = pick.value;
      const quantiles = [0.5, 0.9, 0.99].map((q) => ({
        name: `p${Math.round(q * 100)}`,
        points: pairs.map(([a, b]) => [b.t, prom.quantile(q, prom.deltaBuckets(b.buckets.get(route) || [], a.buckets.get(route) || []))]),
      }));
      lineChart(latency, quantiles, { format: (v) => fmtSeconds(v), windowMs: WINDOW_MS, now });
      lineChart(events, [{ name: 'events/s', points: pairs.map(([a, b]) => [b.t, prom.rate(b.events, a.events, (b.t - a.t) / 1000)]) }],
        { format: perSecond, windowMs: WINDOW_MS, now });
      lineChart(sync, [0.5, 0.99].map((q) => ({
        name: `p${Math.round(q * 100)}`,
        points: pairs.map(([a, b]) => [b.t, (prom.quantile(q, prom.deltaBuckets(b.sync, a.sync)) ?? NaN) / 1e6]),
      })), { format: (v) => fmtSeconds(v), windowMs: WINDOW_MS, now });
      if (latest) {
        const [a, b] = latest;
        const seconds = (b.t - a.t) / 1000;
        routes.replaceChildren(table(['route', 'req/s#', 'p50#', 'p99#'], ranked.map((name) => {
          const delta = prom.deltaBuckets(b.buckets.get(name) || [], a.buckets.get(name) || []);
          const r = prom.rate(b.routes.get(name) ?? 0, a.routes.get(name) ?? 0, seconds);
          return [h('code', {}, name), r === null ? '—' : r.toFixed(2), fmtSeconds(prom.quantile(0.5, delta)), fmtSeconds(prom.quantile(0.99, delta))];
        })));
      }
    };
    const poll = async () => {
      try {
        const text = await get('/metrics');
        const m = prom.parse(typeof text === 'string' ? text : '');
        const routesNow = new Map();
        for (const sample of m.get(`${HTTP}_count`) || []) {
          routesNow.set(sample.labels.route, (routesNow.get(sample.labels.route) || 0) + sample.value);
        }
        const byRoute = new Map([['', prom.buckets(m, HTTP)]]);
        for (const name of routesNow.keys()) byRoute.set(name, prom.buckets(m, HTTP, (labels) => labels.route === name));
        samples.push({
          t: Date.now(),
          routes: routesNow,
          total: prom.sum(m, `${HTTP}_count`),
          buckets: byRoute,
          events: prom.value(m, 'recwal_events_applied_total'),
          sync: prom.buckets(m, 'recwal_wal_sync_latency_us'),
        });
        while (samples.length && samples[0].t < Date.now() - WINDOW_MS - 4000) samples.shift();
        status.replaceChildren();
        draw();
      } catch (error) {
        status.replaceChildren(errorBox(error));
      }
    };
    pick.addEventListener('change', draw);
    ctx.every(2000, poll);
    poll();
  },
};

export { ApiError };
