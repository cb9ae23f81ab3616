//! Model versions side by side on `Engine` (docs/MODELS.md): a canary that
//! ranks a share of users (by `user_bucket`), a shadow scored beside every
//! answer, promotion. The whole routing is one record (kind 13), logged
//! durably after the versions it names are loaded and before they get a
//! request; the ranker (`model/ranker.rs`) holds them loaded.

use std::sync::Arc;

use recwal_wal::Durability;
use tracing::info;

use super::models::now_ms;
use super::Engine;
use crate::error::EngineError;
use crate::model::catalog::{ModelEntry, Routes};
use crate::model::loaded::LoadedModel;
use crate::model::ranker::Routed;
use crate::model::{ModelInfo, ModelStatus};
use crate::record::{CanaryRouteV1, LogRecord, ModelRoutesV1, ShadowRouteV1};

/// A change of the versions served beside the active one
/// (`Engine::set_canary` and its siblings, `Engine::replica_model_routes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// A canary for `per_mille` of users (1–999).
    Canary {
        /// The version.
        version: u32,
        /// Its share.
        per_mille: u16,
    },
    /// No canary.
    ClearCanary,
    /// A shadow.
    Shadow(u32),
    /// No shadow.
    ClearShadow,
}

impl Engine {
    /// Routes `per_mille` of users (1–999, chosen by `user_bucket`) to
    /// `version`, a live version other than the active one: loaded and
    /// warmed up first (a refusal changes nothing), logged (record kind 13,
    /// durable), then served. Replaces any canary; a shadow of the same
    /// version stops being one.
    pub fn set_canary(&self, version: u32, per_mille: u16) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::Canary { version, per_mille })
    }

    /// Ends the canary: every user gets the active version again.
    pub fn clear_canary(&self) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::ClearCanary)
    }

    /// Scores every ranked answer with `version` too (a live version other
    /// than the active one), without serving its scores: its latency and
    /// outcomes go to its metrics. Loaded first, logged, then used.
    /// Replaces any shadow; a canary of the same version stops being one.
    pub fn set_shadow(&self, version: u32) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::Shadow(version))
    }

    /// Ends the shadow scoring.
    pub fn clear_shadow(&self) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::ClearShadow)
    }

    fn change_routes(&self, change: RouteChange) -> Result<ModelStatus, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        let routes = self.routes_after(change)?;
        self.route(routes.canary, routes.shadow)
    }

    /// The routing `change` leads to from the state's.
    fn routes_after(&self, change: RouteChange) -> Result<Routes, EngineError> {
        let routes = self.shared.read_state().models().routes;
        let (canary, shadow) = match change {
            RouteChange::Canary { version, per_mille } => {
                if !(1..1000).contains(&per_mille) {
                    return Err(EngineError::invalid(
                        "percent",
                        format!("must be 0.1–99.9 %, got {per_mille} per mille"),
                    ));
                }
                (Some((version, per_mille)), routes.shadow.filter(|&shadow| shadow != version))
            }
            RouteChange::ClearCanary => (None, routes.shadow),
            RouteChange::Shadow(version) => (routes.canary.filter(|&(canary, _)| canary != version), Some(version)),
            RouteChange::ClearShadow => (routes.canary, None),
        };
        Ok(Routes { canary, shadow })
    }

    /// Activates the canary for every user (`activate_model` of its
    /// version, which is loaded already): the canary route ends with it.
    pub fn promote_canary(&self) -> Result<ModelInfo, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        let canary = self.shared.read_state().models().routes.canary;
        let (version, _) = canary.ok_or_else(|| EngineError::invalid("canary", "there is no canary to promote"))?;
        self.activate(version, false)
    }

    /// Sets the routing (the caller holds the registry's lock): checks
    /// each version, loads the new ones, logs the record durably, serves.
    fn route(&self, canary: Option<(u32, u16)>, shadow: Option<u32>) -> Result<ModelStatus, EngineError> {
        let (record, canary_model, shadow_model) = self.plan_routes(canary, shadow)?;
        let lsn = self.shared.log_and_apply(&LogRecord::ModelRoutes(record), Vec::new(), Durability::Always)?;
        self.shared.ranker.set_routes(Routed { canary: canary_model, shadow: shadow_model, fault: None });
        info!(lsn, ?canary, ?shadow, "model routes set");
        Ok(self.model_status())
    }

    /// The record of a routing, checked (each version live and not the
    /// active one), with the versions loaded (or kept, if routed already):
    /// a version that does not load is refused before anything is logged.
    #[allow(clippy::type_complexity)]
    fn plan_routes(
        &self,
        canary: Option<(u32, u16)>,
        shadow: Option<u32>,
    ) -> Result<(ModelRoutesV1, Option<(Arc<LoadedModel>, u16)>, Option<Arc<LoadedModel>>), EngineError> {
        let ranker = &self.shared.ranker;
        let check = |version: u32, role: &str| -> Result<ModelEntry, EngineError> {
            let entry = self.entry(version)?;
            if entry.lsn_retired.is_some() {
                return Err(EngineError::UnknownModel(version));
            }
            if self.shared.read_state().models().active() == Some(version) {
                return Err(EngineError::invalid(
                    "version",
                    format!("v{version} is the active version: the {role} must be another one"),
                ));
            }
            Ok(entry)
        };
        let canary_entry = canary.map(|(version, per_mille)| check(version, "canary").map(|entry| (entry, per_mille)));
        let canary_entry = canary_entry.transpose()?;
        let shadow_entry = shadow.map(|version| check(version, "shadow")).transpose()?;
        let record = ModelRoutesV1 {
            canary: canary_entry.as_ref().map(|(entry, per_mille)| CanaryRouteV1 {
                version: entry.version,
                sha256: entry.sha256,
                per_mille: *per_mille,
            }),
            shadow: shadow_entry.as_ref().map(|entry| ShadowRouteV1 { version: entry.version, sha256: entry.sha256 }),
            at_ms: now_ms(),
        };
        let canary_model =
            canary_entry.map(|(entry, per_mille)| ranker.load_shared(&entry).map(|model| (model, per_mille)));
        let canary_model = canary_model.transpose()?;
        let shadow_model = shadow_entry.map(|entry| ranker.load_shared(&entry)).transpose()?;
        Ok((record, canary_model, shadow_model))
    }

    /// A cluster node's `set_canary` and its siblings: checked as they are
    /// (the versions loaded on this node too) and returned as the stream
    /// message that sets the routing on every replica. Changes nothing.
    pub fn replica_model_routes(&self, change: RouteChange) -> Result<Vec<u8>, EngineError> {
        let routes = self.routes_after(change)?;
        let (record, canary, shadow) = self.plan_routes(routes.canary, routes.shadow)?;
        // Kept for this node's own apply of the message.
        for model in canary.map(|(model, _)| model).into_iter().chain(shadow) {
            self.shared.ranker.preload(model);
        }
        self.message_of(&LogRecord::ModelRoutes(record), "model")
    }

    /// A cluster node's `promote_canary`: the stream message activating the
    /// canary's version (checked as `replica_model_activation` checks).
    pub fn replica_model_promotion(&self) -> Result<Vec<u8>, EngineError> {
        let canary = self.shared.read_state().models().routes.canary;
        let (version, _) = canary.ok_or_else(|| EngineError::invalid("canary", "there is no canary to promote"))?;
        self.replica_model_activation(Some(version))
    }
}
