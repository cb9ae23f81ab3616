// A small SVG line chart: time on x, one path per series, y from 0 to the
// largest value (rounded up to a readable step), a legend beside it.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 56, right: 10, top: 10, bottom: 22 };

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(max) {
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const factor of [1, 2, 2.5, 5, 10]) if (max <= factor * step) return factor * step;
  return 10 * step;
}

/**
 * Draws into `host` (emptied first). `series`: [{name, points: [[t_ms, value|null]]}];
 * `format(value)` labels the y axis; `windowMs` is the span of x.
 */
export function lineChart(host, series, { format = String, windowMs = 180000, now = Date.now() } = {}) {
  host.replaceChildren();
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img' });
  const values = series.flatMap((one) => one.points.map((point) => point[1])).filter((v) => v !== null && Number.isFinite(v));
  const top = niceMax(Math.max(0, ...values));
  const x0 = now - windowMs;
  const x = (t) => PAD.left + ((t - x0) / windowMs) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (let tick = 0; tick <= 4; tick += 1) {
    const v = (top * tick) / 4;
    svg.append(el('line', { class: 'grid', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
    svg.append(el('text', { x: PAD.left - 4, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  for (let tick = 0; tick <= 3; tick += 1) {
    const t = x0 + (windowMs * tick) / 3;
    const ago = Math.round((now - t) / 1000);
    svg.append(el('text', { x: x(t), y: HEIGHT - 6, 'text-anchor': tick === 0 ? 'start' : tick === 3 ? 'end' : 'middle' }, ago ? `-${ago}s` : 'now'));
  }
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: HEIGHT - PAD.bottom }));
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: WIDTH - PAD.right, y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom }));
  series.forEach((one, at) => {
    let d = '';
    let pen = 'M';
    for (const [t, v] of one.points) {
      if (v === null || !Number.isFinite(v) || t < x0) {
        pen = 'M';
        continue;
      }
      d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
    }
    if (d) svg.append(el('path', { class: `s${at % 8}`, d }));
  });
  const legend = document.createElement('div');
  legend.className = 'legend';
  series.forEach((one, at) => {
    const item = document.createElement('span');
    item.className = `s${at % 8}`;
    item.textContent = one.name;
    legend.append(item);
  });
  host.append(svg, legend);
}
