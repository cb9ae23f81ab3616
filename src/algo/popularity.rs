//! Popularity: items by number of events (or by events decayed with a
//! half-life), most first.

use crate::ids::{id_order, Dense};
use crate::state::State;

/// Fills `scores` with each item's popularity.
pub(crate) fn scores(state: &State, scores: &mut [f64]) {
    for (item, score) in scores.iter_mut().enumerate() {
        *score = state.popularity_score(item as Dense);
    }
}

/// The `n` most popular items passing `keep`, best first, ties to the lower
/// id. Walks the popularity order, so it costs O(n + skipped), not O(items).
/// Items with no events come last, in id order, if they are in the
/// catalogue (new items: a filter that admits few items still gets `n`
/// whenever `n` pass it); an item known only from events whose events are
/// all gone (its users forgotten) is not listed.
pub(crate) fn top(state: &State, n: usize, mut keep: impl FnMut(Dense) -> bool) -> Vec<(Dense, f64)> {
    let mut out: Vec<(Dense, f64)> = Vec::with_capacity(n);
    let mut group: Vec<Dense> = Vec::new();
    let mut group_key = None;
    for (key, item) in state.popular() {
        if state.item_events(item) == 0 && state.item_meta(item).is_none() {
            continue;
        }
        if group_key != Some(key) {
            // A tie group is complete: emit it in id order.
            flush(state, &mut group, &mut out, n);
            if out.len() >= n {
                return out;
            }
            group_key = Some(key);
        }
        if keep(item) {
            group.push(item);
        }
    }
    flush(state, &mut group, &mut out, n);
    out
}

fn flush(state: &State, group: &mut Vec<Dense>, out: &mut Vec<(Dense, f64)>, n: usize) {
    group.sort_unstable_by(|&a, &b| id_order(state.items().name(a), state.items().name(b)));
    for &item in group.iter() {
        if out.len() >= n {
            break;
        }
        out.push((item, state.popularity_score(item)));
    }
    group.clear();
}
