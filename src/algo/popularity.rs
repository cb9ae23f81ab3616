//! Popularity: items by number of events, most first.

use crate::ids::{id_order, Dense};
use crate::state::State;

/// Fills `scores` with each item's event count.
pub(crate) fn scores(state: &State, scores: &mut [f64]) {
    for (score, &events) in scores.iter_mut().zip(&state.item_events) {
        *score = events as f64;
    }
}

/// The `n` most popular items passing `keep`, best first, ties to the lower
/// id. Walks the popularity order, so it costs O(n + skipped), not O(items).
pub(crate) fn top(state: &State, n: usize, mut keep: impl FnMut(Dense) -> bool) -> Vec<(Dense, f64)> {
    let mut out: Vec<(Dense, f64)> = Vec::with_capacity(n);
    let mut group: Vec<Dense> = Vec::new();
    let mut group_count = None;
    for &(std::cmp::Reverse(count), item) in &state.popular {
        if count == 0 {
            break;
        }
        if group_count != Some(count) {
            // A tie group is complete: emit it in id order.
            flush(state, &mut group, group_count, &mut out, n);
            if out.len() >= n {
                return out;
            }
            group_count = Some(count);
        }
        if keep(item) {
            group.push(item);
        }
    }
    flush(state, &mut group, group_count, &mut out, n);
    out
}

fn flush(state: &State, group: &mut Vec<Dense>, count: Option<u64>, out: &mut Vec<(Dense, f64)>, n: usize) {
    let Some(count) = count else { return };
    group.sort_unstable_by(|&a, &b| id_order(state.items.name(a), state.items.name(b)));
    for &item in group.iter() {
        if out.len() >= n {
            break;
        }
        out.push((item, count as f64));
    }
    group.clear();
}
