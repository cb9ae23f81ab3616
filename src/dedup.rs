//! The window of recent client event ids that makes ingest exactly-once.
//! It is part of the state: rebuilt by replay and saved in snapshots, so a
//! retry after a restart is still recognised.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
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

/// Ids in arrival order, and an index from each id to its place in that
/// order. An id accepted again after it aged out (but before eviction
/// reached it) moves to the back: its old slot is marked dead and skipped.
///
/// Ingest runs `record` for each event with an id, in the apply turn every
/// writer waits for, so it allocates nothing per id and does one hash-table
/// operation per insert and per eviction: the ids' bytes sit back to back in
/// one buffer, slots are numbered by arrival (`first_slot` is the number of
/// `order[0]`), and the tables hold slot numbers hashed by their id.
#[derive(Clone, Default)]
pub(crate) struct DedupWindow {
    /// Slot numbers hashed by their id, in `SHARDS` tables chosen by hash
    /// bits that neither the table's bucket index nor its tag uses.
    index: [HashTable<u64>; SHARDS],
    /// Keyed per process (SipHash with random keys): ids come from clients,
    /// and ids crafted to collide under a fixed hash would turn each insert
    /// into a scan. Hashes are never stored outside this process.
    hasher: RandomState,
    order: VecDeque<Slot>,
    first_slot: u64,
    /// The ids' bytes in arrival order; `bytes[0]` is byte number
    /// `first_byte`. The front is dropped once evicted ids fill half of it.
    bytes: Vec<u8>,
    first_byte: u64,
}

#[derive(Clone)]
struct Slot {
    /// Byte number of the id's first byte, and its length.
    start: u64,
    len: u32,
    /// False once the id was accepted again (a later slot holds it).
    live: bool,
    hash: u64,
    seen: FirstSeen,
}

/// A table doubles and rehashes everything when it fills, in the apply turn
/// every writer waits for: one table of the default million ids stalled
/// ingest for 50-80 ms at each doubling under load. Split in sixteen, a
/// doubling rehashes a sixteenth of the ids.
const SHARDS: usize = 16;

fn shard(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// Slot number `number` of `order` (whose first is `first_slot`); the free
/// functions let the table's closures borrow the fields they read while the
/// table itself is borrowed mutably.
fn slot_at(order: &VecDeque<Slot>, first_slot: u64, number: u64) -> Option<&Slot> {
    order.get(usize::try_from(number.checked_sub(first_slot)?).ok()?)
}

/// The bytes of `slot`'s id in `bytes` (whose first is byte `first_byte`).
fn id_bytes<'a>(bytes: &'a [u8], first_byte: u64, slot: &Slot) -> &'a [u8] {
    let start = slot.start.checked_sub(first_byte).and_then(|start| usize::try_from(start).ok());
    start.and_then(|start| bytes.get(start..start.checked_add(slot.len as usize)?)).unwrap_or_default()
}

impl DedupWindow {
    /// The id's first acceptance, if it is still inside the window at `now_ms`.
    pub fn lookup(&self, id: &str, now_ms: i64, config: &DedupConfig) -> Option<FirstSeen> {
        let hash = self.hasher.hash_one(id.as_bytes());
        let number = self.index[shard(hash)].find(hash, |&number| self.holds(number, id))?;
        let seen = slot_at(&self.order, self.first_slot, *number)?.seen;
        let max_age = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
        (seen.ingested_ms >= now_ms.saturating_sub(max_age)).then_some(seen)
    }

    /// Records an accepted id, then evicts what fell out of the window.
    /// Driven only by logged values, so replay evicts exactly as the live
    /// run did.
    pub fn record(&mut self, id: &str, seen: FirstSeen, config: &DedupConfig) {
        self.push(id, seen);
        let max_age = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
        let oldest_allowed = seen.ingested_ms.saturating_sub(max_age);
        while let Some(front) = self.order.front() {
            if front.live {
                if self.len() <= config.max_ids && front.seen.ingested_ms >= oldest_allowed {
                    break;
                }
                let number = self.first_slot;
                if let Ok(entry) = self.index[shard(front.hash)].find_entry(front.hash, |&slot| slot == number) {
                    entry.remove();
                }
            }
            self.order.pop_front();
            self.first_slot += 1;
        }
        self.drop_evicted_bytes();
    }

    /// Whether slot `number` holds `id`.
    fn holds(&self, number: u64, id: &str) -> bool {
        slot_at(&self.order, self.first_slot, number)
            .is_some_and(|slot| id_bytes(&self.bytes, self.first_byte, slot) == id.as_bytes())
    }

    fn push(&mut self, id: &str, seen: FirstSeen) {
        let hash = self.hasher.hash_one(id.as_bytes());
        let number = self.first_slot + self.order.len() as u64;
        let (order, bytes, first_slot, first_byte) = (&self.order, &self.bytes, self.first_slot, self.first_byte);
        let holds_id = |&slot: &u64| {
            slot_at(order, first_slot, slot).is_some_and(|slot| id_bytes(bytes, first_byte, slot) == id.as_bytes())
        };
        let table = &mut self.index[shard(hash)];
        match table.find_mut(hash, holds_id) {
            // Listed already: the id moves to the back, its old slot dies.
            Some(listed) => {
                let earlier = std::mem::replace(listed, number);
                let at = earlier.checked_sub(first_slot).and_then(|at| usize::try_from(at).ok());
                if let Some(old) = at.and_then(|at| self.order.get_mut(at)) {
                    old.live = false;
                }
            }
            None => {
                let rehash = |&slot: &u64| slot_at(order, first_slot, slot).map_or(0, |slot| slot.hash);
                table.insert_unique(hash, number, rehash);
            }
        }
        let start = self.first_byte + self.bytes.len() as u64;
        self.bytes.extend_from_slice(id.as_bytes());
        self.order.push_back(Slot { start, len: id.len() as u32, live: true, hash, seen });
    }

    /// Drops the bytes of evicted ids once they are half the buffer (each
    /// byte is moved at most once on average: O(1) per id).
    fn drop_evicted_bytes(&mut self) {
        let first_kept = self.order.front().map_or(self.first_byte + self.bytes.len() as u64, |slot| slot.start);
        let evicted = (first_kept - self.first_byte) as usize;
        if evicted > 0 && evicted >= self.bytes.len() / 2 {
            self.bytes.drain(..evicted);
            self.first_byte = first_kept;
        }
    }

    pub fn len(&self) -> usize {
        self.index.iter().map(HashTable::len).sum()
    }

    /// Live entries in arrival order, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (&str, FirstSeen)> + '_ {
        live_entries(&self.order, &self.bytes, self.first_byte)
    }

    /// A copy of the live entries, for a snapshot written after the
    /// state's lock is released: two buffer copies, no per-id work, into
    /// `into`'s buffers (see `DedupEntries::with_room`).
    pub fn entries_copy(&self, mut into: DedupEntries) -> DedupEntries {
        into.order.clear();
        into.order.extend(self.order.iter().cloned());
        into.bytes.clear();
        into.bytes.extend_from_slice(&self.bytes);
        into.first_byte = self.first_byte;
        into
    }

    /// The sizes of the buffers `entries_copy` fills: slots and bytes.
    pub fn room(&self) -> (usize, usize) {
        (self.order.len(), self.bytes.len())
    }

    pub fn from_entries(entries: Vec<(String, FirstSeen)>) -> DedupWindow {
        let mut window = DedupWindow::default();
        for (id, seen) in entries {
            window.push(&id, seen);
        }
        window
    }
}

/// The entries of a `DedupWindow`, without its index (`entries_copy`).
#[derive(Default)]
pub(crate) struct DedupEntries {
    order: VecDeque<Slot>,
    bytes: Vec<u8>,
    first_byte: u64,
}

impl DedupEntries {
    /// Empty buffers with room for a window of `(slots, bytes)` (`room`)
    /// and an eighth more, their memory written once: allocated before the
    /// state's lock is taken, so that the copy under it does not fault the
    /// pages in (two thirds of a 60 ms copy of a million ids did).
    pub fn with_room((slots, bytes): (usize, usize)) -> DedupEntries {
        let (slots, bytes) = (slots + slots / 8, bytes + bytes / 8);
        let blank = Slot { start: 0, len: 0, live: false, hash: 0, seen: FirstSeen { lsn: 0, ingested_ms: 0 } };
        let mut order = VecDeque::with_capacity(slots);
        order.resize(slots, blank);
        order.clear();
        let mut buffer = vec![0u8; bytes];
        buffer.clear();
        DedupEntries { order, bytes: buffer, first_byte: 0 }
    }

    /// Live entries in arrival order, as `DedupWindow::entries`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, FirstSeen)> + '_ {
        live_entries(&self.order, &self.bytes, self.first_byte)
    }
}

fn live_entries<'a>(
    order: &'a VecDeque<Slot>,
    bytes: &'a [u8],
    first_byte: u64,
) -> impl Iterator<Item = (&'a str, FirstSeen)> + 'a {
    order
        .iter()
        .filter(|slot| slot.live)
        // Every id went in as a `&str`.
        .filter_map(move |slot| Some((std::str::from_utf8(id_bytes(bytes, first_byte, slot)).ok()?, slot.seen)))
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
        let entries: Vec<_> = window.entries().map(|(id, s)| (id.to_string(), s)).collect();
        for into in [DedupEntries::default(), DedupEntries::with_room((1, 1)), DedupEntries::with_room(window.room())] {
            let copied: Vec<_> = window.entries_copy(into).entries().map(|(id, s)| (id.to_string(), s)).collect();
            assert_eq!(copied, entries);
        }
        let rebuilt = DedupWindow::from_entries(window.entries().map(|(id, s)| (id.to_string(), s)).collect());
        assert_eq!(rebuilt.entries().collect::<Vec<_>>(), window.entries().collect::<Vec<_>>());
    }

    proptest::proptest! {
        /// The window equals a plain list of live ids kept in arrival order
        /// (an id accepted again moves to the back; the front leaves while
        /// the list is over `max_ids` or older than `max_age` at the newest
        /// acceptance), whatever the ids, clocks and limits.
        #[test]
        fn the_window_behaves_like_a_list_of_live_ids(
            max_ids in 1usize..6,
            max_age_ms in 1u64..50,
            steps in proptest::collection::vec((0u8..8, 0i64..15), 0..80),
        ) {
            let config = DedupConfig { max_ids, max_age: Duration::from_millis(max_age_ms) };
            let mut window = DedupWindow::default();
            let mut model: Vec<(String, FirstSeen)> = Vec::new();
            let mut now = 0i64;
            for (lsn, (id, step)) in steps.into_iter().enumerate() {
                now += step;
                let id = format!("id-{id}");
                let seen = FirstSeen { lsn: lsn as u64 + 1, ingested_ms: now };
                window.record(&id, seen, &config);
                model.retain(|(kept, _)| *kept != id);
                model.push((id, seen));
                let oldest_allowed = now - max_age_ms as i64;
                while model.len() > max_ids || model.first().is_some_and(|(_, first)| first.ingested_ms < oldest_allowed) {
                    model.remove(0);
                }
                let entries: Vec<(String, FirstSeen)> = window.entries().map(|(id, s)| (id.to_string(), s)).collect();
                proptest::prop_assert_eq!(&entries, &model);
                proptest::prop_assert_eq!(window.len(), model.len());
                for probe in 0..8u8 {
                    let probe = format!("id-{probe}");
                    let expected = model.iter().find(|(kept, _)| *kept == probe).map(|(_, s)| *s)
                        .filter(|s| s.ingested_ms >= now - max_age_ms as i64);
                    proptest::prop_assert_eq!(window.lookup(&probe, now, &config), expected);
                }
            }
        }
    }
}
