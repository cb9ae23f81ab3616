// Prometheus text format (0.0.4) parsing, counter rates and histogram
// quantiles, as the live charts need them.

/** Parses the text into a Map: metric name -> [{labels, value}]. Comments and malformed lines are skipped. */
export function parse(text) {
  const metrics = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (!sample) continue;
    if (!metrics.has(sample.name)) metrics.set(sample.name, []);
    metrics.get(sample.name).push({ labels: sample.labels, value: sample.value });
  }
  return metrics;
}

function parseLine(line) {
  const nameEnd = line.search(/[{\s]/);
  if (nameEnd <= 0) return null;
  const name = line.slice(0, nameEnd);
  const labels = {};
  let at = nameEnd;
  if (line[at] === '{') {
    at += 1;
    while (at < line.length && line[at] !== '}') {
      const eq = line.indexOf('=', at);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(at, eq).trim().replace(/^,/, '').trim();
      let value = '';
      let pos = eq + 2;
      for (; pos < line.length && line[pos] !== '"'; pos += 1) {
        if (line[pos] === '\\' && pos + 1 < line.length) {
          pos += 1;
          value += line[pos] === 'n' ? '\n' : line[pos];
        } else {
          value += line[pos];
        }
      }
      if (pos >= line.length) return null;
      labels[key] = value;
      at = pos + 1;
      if (line[at] === ',') at += 1;
    }
    if (line[at] !== '}') return null;
    at += 1;
  }
  const fields = line.slice(at).trim().split(/\s+/);
  const value = parseValue(fields[0]);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(text) {
  if (text === undefined) return null;
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  return Number.isNaN(value) ? null : value;
}

/** The value of the first sample of `name` whose labels include `labels`, or null. */
export function value(metrics, name, labels = {}) {
  const found = (metrics.get(name) || []).find((sample) => matches(sample.labels, labels));
  return found ? found.value : null;
}

/** The sum of the samples of `name` whose labels pass `keep` (all by default). */
export function sum(metrics, name, keep = () => true) {
  return (metrics.get(name) || []).filter((sample) => keep(sample.labels)).reduce((total, sample) => total + sample.value, 0);
}

function matches(have, want) {
  return Object.entries(want).every(([key, value]) => have[key] === value);
}

/**
 * A histogram's cumulative buckets, summed over the series whose labels
 * pass `keep` (grouping away method and status, say): [[le, count]] by le.
 */
export function buckets(metrics, name, keep = () => true) {
  const byLe = new Map();
  for (const sample of metrics.get(`${name}_bucket`) || []) {
    if (!keep(sample.labels)) continue;
    const le = parseValue(sample.labels.le);
    if (le === null) continue;
    byLe.set(le, (byLe.get(le) || 0) + sample.value);
  }
  return [...byLe.entries()].sort((a, b) => a[0] - b[0]);
}

/** Bucket counts of `now` minus those of `before` (the observations in between). */
export function deltaBuckets(now, before) {
  const old = new Map(before || []);
  // A counter that went down means a restart: take the new counts whole.
  const reset = now.some(([le, count]) => count < (old.get(le) || 0));
  return now.map(([le, count]) => [le, reset ? count : count - (old.get(le) || 0)]);
}

/**
 * The q-quantile of cumulative buckets, interpolated linearly inside the
 * bucket as Prometheus' histogram_quantile does; null with no observations.
 * In the top (+Inf) bucket the answer is the highest finite bound.
 */
export function quantile(q, cumulative) {
  if (!cumulative.length) return null;
  const total = cumulative[cumulative.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of cumulative) {
    if (count >= rank) {
      if (le === Infinity) return lowerBound;
      if (count === lowerCount) return le;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}

/** Per-second rate of a counter between two readings; null across a reset. */
export function rate(now, before, seconds) {
  if (now === null || before === null || !(seconds > 0) || now < before) return null;
  return (now - before) / seconds;
}
