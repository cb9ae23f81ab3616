//! The model catalog: every version added, its SHA-256, its activations and
//! whether it was retired, rebuilt from the log's model records (kinds 4–6)
//! and saved in snapshots like the rest of the state. Which version is
//! active is a fact of the log, so a restart comes back on the same one.

use serde::{Deserialize, Serialize};

use crate::record::{LogRecord, ModelActivatedV1, ModelAddedV1, ModelRoutesV1};

/// Versions the rollback stack remembers.
const STACK_MAX: usize = 16;

/// One activation of a version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Activation {
    /// LSN of the activation record.
    pub lsn: u64,
    /// When it was activated (ms since the Unix epoch, engine clock).
    pub at_ms: i64,
    /// It was a rollback.
    pub rollback: bool,
}

/// A version as the log recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Version number, from 1, never reused.
    pub version: u32,
    /// SHA-256 of the model file.
    pub sha256: [u8; 32],
    /// File size.
    pub bytes: u64,
    /// When it was added (ms since the Unix epoch).
    pub added_ms: i64,
    /// LSN of its `ModelAdded` record.
    pub lsn_added: u64,
    /// Its activations, oldest first.
    pub activations: Vec<Activation>,
    /// LSN of its `ModelRetired` record (its file is deleted).
    pub lsn_retired: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Catalog {
    /// By version.
    pub entries: Vec<ModelEntry>,
    /// Activated versions, the active one last; a rollback pops it.
    pub stack: Vec<u32>,
    /// The versions served beside the active one (record kind 13). A
    /// snapshot section of its own (format 7), so the catalog's encoding
    /// above stays what older snapshots hold.
    #[serde(skip)]
    pub routes: Routes,
}

/// The versions that get requests besides the active one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Routes {
    /// A canary: `(version, per mille of users)`.
    pub canary: Option<(u32, u16)>,
    /// A shadow version.
    pub shadow: Option<u32>,
}

impl Routes {
    /// The routing a kind-13 record sets.
    pub fn of(record: &ModelRoutesV1) -> Routes {
        Routes {
            canary: record.canary.map(|canary| (canary.version, canary.per_mille)),
            shadow: record.shadow.map(|shadow| shadow.version),
        }
    }

    /// Whether `version` is routed (canary or shadow).
    pub fn names(&self, version: u32) -> bool {
        self.canary.is_some_and(|(canary, _)| canary == version) || self.shadow == Some(version)
    }

    /// `version` leaves whichever route it had (activated, retired).
    fn leave(&mut self, version: u32) {
        if self.canary.is_some_and(|(canary, _)| canary == version) {
            self.canary = None;
        }
        if self.shadow == Some(version) {
            self.shadow = None;
        }
    }
}

impl Catalog {
    pub fn active(&self) -> Option<u32> {
        self.stack.last().copied()
    }

    /// The version a rollback would activate.
    pub fn previous(&self) -> Option<u32> {
        self.stack.len().checked_sub(2).map(|at| self.stack[at])
    }

    /// `None` once every `u32` was used.
    pub fn next_version(&self) -> Option<u32> {
        self.entries.last().map_or(Some(1), |entry| entry.version.checked_add(1))
    }

    pub fn get(&self, version: u32) -> Option<&ModelEntry> {
        self.entries.binary_search_by_key(&version, |entry| entry.version).ok().map(|at| &self.entries[at])
    }

    fn get_mut(&mut self, version: u32) -> Option<&mut ModelEntry> {
        self.entries.binary_search_by_key(&version, |entry| entry.version).ok().map(|at| &mut self.entries[at])
    }

    /// A live (not retired) version with this hash.
    pub fn find_hash(&self, sha256: &[u8; 32]) -> Option<&ModelEntry> {
        self.entries.iter().find(|entry| entry.lsn_retired.is_none() && &entry.sha256 == sha256)
    }

    pub fn add(&mut self, lsn: u64, record: &ModelAddedV1) {
        if self.next_version().is_none_or(|next| record.version < next) {
            return;
        }
        self.entries.push(ModelEntry {
            version: record.version,
            sha256: record.sha256,
            bytes: record.bytes,
            added_ms: record.added_ms,
            lsn_added: lsn,
            activations: Vec::new(),
            lsn_retired: None,
        });
    }

    pub fn activate(&mut self, lsn: u64, record: &ModelActivatedV1) {
        let Some(entry) = self.get_mut(record.version) else { return };
        entry.activations.push(Activation { lsn, at_ms: record.at_ms, rollback: record.rollback });
        // A canary or shadow activated (promoted) leaves its route.
        self.routes.leave(record.version);
        if record.rollback && self.previous() == Some(record.version) {
            self.stack.pop();
        } else if self.active() != Some(record.version) {
            // (Re-activating the active version, to repair a fault, does
            // not stack it twice.)
            self.stack.push(record.version);
            if self.stack.len() > STACK_MAX {
                self.stack.remove(0);
            }
        }
    }

    pub fn retire(&mut self, lsn: u64, version: u32) {
        if let Some(entry) = self.get_mut(version) {
            entry.lsn_retired.get_or_insert(lsn);
        }
        self.stack.retain(|&kept| kept != version);
        self.routes.leave(version);
    }

    /// Kind 13: the routing as the record gives it (checked before it was
    /// logged: `routable`).
    pub fn set_routes(&mut self, record: &ModelRoutesV1) {
        self.routes = Routes::of(record);
    }

    /// Whether `version` (with this file) may be a canary or shadow: live,
    /// and not the active version.
    pub fn routable(&self, version: u32, sha256: &[u8; 32]) -> bool {
        self.get(version).is_some_and(|entry| entry.lsn_retired.is_none() && &entry.sha256 == sha256)
            && self.active() != Some(version)
    }

    /// Whether a routing record fits: each version it names routable, a
    /// canary's share within 1–999 per mille, not the same version twice.
    pub fn admits_routes(&self, record: &ModelRoutesV1) -> bool {
        let canary_fits = record.canary.is_none_or(|canary| {
            (1..1000).contains(&canary.per_mille) && self.routable(canary.version, &canary.sha256)
        });
        let shadow_fits = record.shadow.is_none_or(|shadow| self.routable(shadow.version, &shadow.sha256));
        let distinct = match (record.canary, record.shadow) {
            (Some(canary), Some(shadow)) => canary.version != shadow.version,
            _ => true,
        };
        canary_fits && shadow_fits && distinct
    }

    /// Whether a model record from the replication stream changes this
    /// catalog (`State::apply`; docs/CLUSTER.md, "Models"). Any node may
    /// publish one from its own view, so by the time it is applied it may
    /// no longer fit: an addition must be the next version of a file not
    /// live already, an activation must name a live version with that
    /// file, and a retirement a live version that is neither active nor
    /// routed (one a rollback could reach leaves the stack, as
    /// `Engine::retire_model` does). One
    /// that does not fit is a no-op, decided from the catalog alone, so
    /// every replica decides the same.
    pub fn admits_replicated(&self, record: &LogRecord<'_>) -> bool {
        match record {
            LogRecord::ModelAdded(added) => {
                self.next_version() == Some(added.version) && self.find_hash(&added.sha256).is_none()
            }
            LogRecord::ModelActivated(activated) => self
                .get(activated.version)
                .is_some_and(|entry| entry.lsn_retired.is_none() && entry.sha256 == activated.sha256),
            LogRecord::ModelRetired(retired) => {
                self.get(retired.version).is_some_and(|entry| entry.lsn_retired.is_none())
                    && self.active() != Some(retired.version)
                    && !self.routes.names(retired.version)
            }
            LogRecord::ModelRoutes(routes) => self.admits_routes(routes),
            _ => true,
        }
    }

    /// The catalog without the local log's positions (LSNs of the records,
    /// which differ between replicas of the same stream), for the replica
    /// digest.
    pub fn without_lsns(&self) -> Catalog {
        let mut view = self.clone();
        for entry in &mut view.entries {
            entry.lsn_added = 0;
            entry.lsn_retired = entry.lsn_retired.map(|_| 0);
            for activation in &mut entry.activations {
                activation.lsn = 0;
            }
        }
        view
    }

    /// Checks a catalog read from a snapshot: versions ascending and unique,
    /// the stack naming live versions only.
    pub fn validate(&self) -> Result<(), String> {
        if self.entries.windows(2).any(|pair| pair[0].version >= pair[1].version) {
            return Err("model versions out of order".into());
        }
        for &version in &self.stack {
            if self.get(version).is_none_or(|entry| entry.lsn_retired.is_some()) {
                return Err(format!("the model stack names version {version}, which is not live"));
            }
        }
        let routed = self.routes.canary.map(|(version, _)| version).into_iter().chain(self.routes.shadow);
        for version in routed {
            if self.get(version).is_none_or(|entry| entry.lsn_retired.is_some()) || self.active() == Some(version) {
                return Err(format!("the model routes name version {version}, which is not live or is active"));
            }
        }
        Ok(())
    }

    /// Live versions a retention of `keep` retires: all but the `keep`
    /// newest, never the active one or one a rollback could reach.
    pub fn to_retire(&self, keep: usize) -> Vec<u32> {
        let live: Vec<u32> =
            self.entries.iter().filter(|entry| entry.lsn_retired.is_none()).map(|entry| entry.version).collect();
        let newest_kept = live.len().saturating_sub(keep);
        live[..newest_kept]
            .iter()
            .copied()
            .filter(|version| !self.stack.contains(version) && !self.routes.names(*version))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(version: u32) -> ModelAddedV1 {
        ModelAddedV1 { version, sha256: [version as u8; 32], bytes: 10, added_ms: 0 }
    }

    fn activated(version: u32, rollback: bool) -> ModelActivatedV1 {
        ModelActivatedV1 { version, sha256: [version as u8; 32], at_ms: 0, rollback }
    }

    #[test]
    fn activations_stack_and_rollbacks_pop() {
        let mut catalog = Catalog::default();
        for version in 1..=3 {
            catalog.add(u64::from(version), &added(version));
        }
        assert_eq!(catalog.next_version(), Some(4));
        catalog.activate(10, &activated(1, false));
        catalog.activate(11, &activated(2, false));
        catalog.activate(12, &activated(3, false));
        assert_eq!((catalog.active(), catalog.previous()), (Some(3), Some(2)));
        catalog.activate(13, &activated(2, true));
        assert_eq!((catalog.active(), catalog.previous()), (Some(2), Some(1)));
        assert_eq!(catalog.get(2).map(|entry| entry.activations.len()), Some(2));
        // Retention 1 keeps the newest (3) and everything a rollback reaches.
        assert_eq!(catalog.to_retire(1), Vec::<u32>::new());
        catalog.activate(14, &activated(3, false));
        catalog.retire(15, 1);
        assert_eq!(catalog.stack, vec![2, 3]);
        assert!(catalog.find_hash(&[1; 32]).is_none());
        assert_eq!(catalog.find_hash(&[2; 32]).map(|entry| entry.version), Some(2));
    }

    #[test]
    fn retention_never_retires_the_active_version() {
        let mut catalog = Catalog::default();
        for version in 1..=5 {
            catalog.add(u64::from(version), &added(version));
        }
        catalog.activate(6, &activated(1, false));
        assert_eq!(catalog.to_retire(2), vec![2, 3]);
        // A replayed record at or below a version already known is ignored.
        catalog.add(7, &added(2));
        assert_eq!(catalog.entries.len(), 5);
        assert_eq!(catalog.validate(), Ok(()));
        // Activating the active version again (a repair) does not stack it.
        catalog.activate(8, &activated(1, false));
        assert_eq!(catalog.stack, vec![1]);
        catalog.stack.push(9);
        assert!(catalog.validate().is_err());
    }

    #[test]
    fn replicas_with_other_lsns_have_the_same_lsn_free_view() {
        let (mut here, mut there) = (Catalog::default(), Catalog::default());
        for (catalog, base) in [(&mut here, 10), (&mut there, 500)] {
            catalog.add(base, &added(1));
            catalog.add(base + 3, &added(2));
            catalog.activate(base + 7, &activated(2, false));
            catalog.retire(base + 9, 1);
        }
        assert_ne!(here, there);
        assert_eq!(here.without_lsns(), there.without_lsns());
        // Whether a version is retired still counts.
        there.retire(600, 2);
        assert_ne!(here.without_lsns(), there.without_lsns());
    }

    #[test]
    fn a_replicated_model_change_applies_only_where_it_still_fits() {
        let mut catalog = Catalog::default();
        let admits = |catalog: &Catalog, record: LogRecord<'static>| catalog.admits_replicated(&record);
        assert!(admits(&catalog, LogRecord::ModelAdded(added(1))));
        assert!(!admits(&catalog, LogRecord::ModelAdded(added(2))), "not the next version");
        catalog.add(1, &added(1));
        assert!(!admits(&catalog, LogRecord::ModelAdded(ModelAddedV1 { version: 2, ..added(1) })), "live already");
        assert!(admits(&catalog, LogRecord::ModelActivated(activated(1, false))));
        let other_file = ModelActivatedV1 { sha256: [9; 32], ..activated(1, false) };
        assert!(!admits(&catalog, LogRecord::ModelActivated(other_file)));
        assert!(!admits(&catalog, LogRecord::ModelActivated(activated(2, false))), "unknown");
        catalog.activate(2, &activated(1, false));
        let retire = |version| LogRecord::ModelRetired(crate::record::ModelRetiredV1 { version });
        assert!(!admits(&catalog, retire(1)), "active");
        catalog.add(3, &added(2));
        assert!(admits(&catalog, retire(2)));
        catalog.retire(4, 2);
        assert!(!admits(&catalog, retire(2)), "retired already");
        assert!(!admits(&catalog, LogRecord::ModelActivated(activated(2, false))), "retired");
    }

    #[test]
    fn version_numbers_run_out_without_overflow() {
        let mut catalog = Catalog::default();
        catalog.add(1, &added(u32::MAX));
        assert_eq!(catalog.next_version(), None);
        catalog.add(2, &added(5));
        assert_eq!(catalog.entries.len(), 1);
    }
}
