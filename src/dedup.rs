//! The window of recent client event ids that makes ingest exactly-once.
//! It is part of the state: rebuilt by replay and saved in snapshots, so a
//! retry after a restart is still recognised.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;

/// Where an id was first accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen {
    /// LSN of the record that carried it.
    pub lsn: u64,
    /// Engine clock when it was ingested.
    pub ingested_ms: i64,
}

/// Ids in arrival order, and an index over them. An id accepted again after
/// it aged out (but before eviction reached it) moves to the back: its old
/// slot in `order` goes stale (its generation no longer matches) and is
/// skipped.
#[derive(Clone, Default)]
pub(crate) struct DedupWindow {
    by_id: FxHashMap<Arc<str>, (FirstSeen, u64)>,
    order: VecDeque<(Arc<str>, u64)>,
    next_generation: u64,
}

impl DedupWindow {
    /// The id's first acceptance, if it is still inside the window at `now_ms`.
    pub fn lookup(&self, id: &str, now_ms: i64, config: &DedupConfig) -> Option<FirstSeen> {
        let (seen, _) = self.by_id.get(id)?;
        let max_age = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
        (seen.ingested_ms >= now_ms.saturating_sub(max_age)).then_some(*seen)
    }

    /// Records an accepted id, then evicts what fell out of the window.
    /// Driven only by logged values, so replay evicts exactly as the live
    /// run did.
    pub fn record(&mut self, id: &str, seen: FirstSeen, config: &DedupConfig) {
        self.push(Arc::from(id), seen);
        let max_age = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
        let oldest_allowed = seen.ingested_ms.saturating_sub(max_age);
        while let Some((front, generation)) = self.order.front() {
            match self.by_id.get(front) {
                Some((_, live)) if live != generation => {
                    self.order.pop_front(); // a stale slot of a re-accepted id
                }
                Some((first, _)) if self.by_id.len() > config.max_ids || first.ingested_ms < oldest_allowed => {
                    if let Some((front, _)) = self.order.pop_front() {
                        self.by_id.remove(&front);
                    }
                }
                Some(_) => break,
                None => {
                    self.order.pop_front();
                }
            }
        }
    }

    fn push(&mut self, id: Arc<str>, seen: FirstSeen) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.by_id.insert(Arc::clone(&id), (seen, generation));
        self.order.push_back((id, generation));
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Live entries in arrival order, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (&str, FirstSeen)> + '_ {
        self.order.iter().filter_map(|(id, generation)| match self.by_id.get(id) {
            Some((seen, live)) if live == generation => Some((&**id, *seen)),
            _ => None,
        })
    }

    pub fn from_entries(entries: Vec<(String, FirstSeen)>) -> DedupWindow {
        let mut window = DedupWindow::default();
        for (id, seen) in entries {
            window.push(Arc::from(id), seen);
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_leave_by_count_and_by_age() {
        let config = DedupConfig { max_ids: 2, max_age: Duration::from_millis(100) };
        let mut window = DedupWindow::default();
        window.record("a", FirstSeen { lsn: 1, ingested_ms: 0 }, &config);
        window.record("b", FirstSeen { lsn: 2, ingested_ms: 10 }, &config);
        assert_eq!(window.lookup("a", 10, &config).map(|s| s.lsn), Some(1));
        window.record("c", FirstSeen { lsn: 3, ingested_ms: 20 }, &config);
        assert_eq!(window.lookup("a", 20, &config), None, "evicted by count");
        assert!(window.lookup("b", 20, &config).is_some());
        assert_eq!(window.lookup("b", 111, &config), None, "too old at lookup time");
        window.record("d", FirstSeen { lsn: 4, ingested_ms: 200 }, &config);
        assert_eq!(window.len(), 1, "b and c evicted by age");
    }

    #[test]
    fn an_id_accepted_again_moves_to_the_back() {
        let config = DedupConfig { max_ids: 2, max_age: Duration::from_millis(100) };
        let mut window = DedupWindow::default();
        window.record("a", FirstSeen { lsn: 1, ingested_ms: 0 }, &config);
        window.record("b", FirstSeen { lsn: 2, ingested_ms: 90 }, &config);
        // "a" aged out (lookup says so) but was not evicted yet; accepted again:
        assert_eq!(window.lookup("a", 150, &config), None);
        window.record("a", FirstSeen { lsn: 3, ingested_ms: 150 }, &config);
        window.record("c", FirstSeen { lsn: 4, ingested_ms: 160 }, &config);
        // The count evicts "b" (the oldest live id), not the re-accepted "a".
        assert_eq!(window.lookup("a", 160, &config).map(|s| s.lsn), Some(3));
        assert_eq!(window.lookup("b", 160, &config), None);
        let ids: Vec<&str> = window.entries().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["a", "c"]);
        let rebuilt = DedupWindow::from_entries(window.entries().map(|(id, s)| (id.to_string(), s)).collect());
        assert_eq!(rebuilt.entries().collect::<Vec<_>>(), window.entries().collect::<Vec<_>>());
    }
}
