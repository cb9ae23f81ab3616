//! Popularity: items by number of events (or by events decayed with a
//! half-life), most first.

use std::cmp::Reverse;

use crate::ids::{id_order, Dense};
use crate::state::{OrderedKey, State};

/// Fills `scores` with each item's popularity.
pub(crate) fn scores(state: &State, scores: &mut [f64]) {
    for (item, score) in scores.iter_mut().enumerate() {
        *score = state.popularity_score(item as Dense);
    }
}

/// The `n` most popular items passing `keep`, best first, ties to the lower
/// id: of all items, or (`categories`) of the items in any of those
/// categories. Walks the popularity order (the categories' own orders with a
/// category filter), so it costs O(n + skipped), not O(items). Items with no
/// events come last, in id order, if they are in the catalogue (new items: a
/// filter that admits few items still gets `n` whenever `n` pass it); an
/// item known only from events whose events are all gone (its users
/// forgotten) is not listed.
pub(crate) fn top(
    state: &State,
    n: usize,
    categories: Option<&[u32]>,
    keep: impl FnMut(Dense) -> bool,
) -> Vec<(Dense, f64)> {
    match categories {
        None => top_of(state, n, state.popular(), keep),
        Some(&[category]) => top_of(state, n, state.popular_in(category), keep),
        Some(categories) => top_of(state, n, merged(state, categories), keep),
    }
}

/// The orders of `categories` merged into one, each item once.
fn merged<'s>(state: &'s State, categories: &[u32]) -> impl Iterator<Item = (OrderedKey, Dense)> + 's {
    let mut lists: Vec<_> = categories.iter().map(|&category| state.popular_in(category).peekable()).collect();
    let mut last = None;
    std::iter::from_fn(move || loop {
        let (at, entry) = lists
            .iter_mut()
            .enumerate()
            .filter_map(|(at, list)| list.peek().map(|&entry| (at, entry)))
            .min_by_key(|&(_, (key, item))| (Reverse(key), item))?;
        lists[at].next();
        // An item of two of the categories comes up twice in a row.
        if last != Some(entry) {
            last = Some(entry);
            return Some(entry);
        }
    })
}

fn top_of(
    state: &State,
    n: usize,
    order: impl Iterator<Item = (OrderedKey, Dense)>,
    mut keep: impl FnMut(Dense) -> bool,
) -> Vec<(Dense, f64)> {
    let mut out: Vec<(Dense, f64)> = Vec::with_capacity(n);
    let mut group: Vec<Dense> = Vec::new();
    let mut group_key = None;
    for (key, item) in order {
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
