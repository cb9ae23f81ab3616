//! Ranking models on replicas (docs/CLUSTER.md, "Models"). The registry's
//! changes travel as stream messages like any other write; the ONNX file,
//! too large for a message, goes first to the object-store bucket
//! `<stream>_models`, under its SHA-256 in hex. Every node's follower
//! fetches (and checks) the file of an addition before it applies it, and
//! the engine loads and warms up an activated version before it logs the
//! activation, swapping it in right after: every replica serves the new
//! version from the same stream position on. A node that cannot get or
//! load the file applies the message all the same (it never diverges),
//! answers un-ranked and says why in `/readyz` and `/admin/models/status`;
//! it fetches missing files at start and, while a model fault lasts, every
//! `RESTORE_EVERY`.
//!
//! The bucket keeps every file added (retiring a version deletes the
//! node's copy, not the bucket's: a node replaying an older part of the
//! stream may still need it).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use recwal::{Engine, ModelFileRef, ReplicaModelAdd, RouteChange};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use super::http::{not_stored, publish_checked, replica_of, with_seq};
use super::Replica;
use crate::problem::Problem;
use crate::server::{blocking, App};

/// How often a node with a model fault looks for the missing files.
const RESTORE_EVERY: Duration = Duration::from_secs(10);

/// Tries of a file's download before an addition is applied without it.
const FETCH_TRIES: u32 = 3;

/// Why a model file could not be had.
pub(super) enum FetchError {
    /// The bucket has no such file, or one that does not match the hash:
    /// waiting will not help.
    Missing(String),
    /// The connection, the bucket's leader, a timeout: try again later.
    Transient(String),
}

impl Replica {
    /// The model bucket, created by the first node that needs it (with the
    /// stream's replica count).
    async fn model_bucket(&self) -> Result<ObjectStore, String> {
        self.object_bucket(self.config.model_bucket(), "recwal: ranking model files, by SHA-256").await
    }

    /// Puts `bytes` (the file `file` names) into the bucket unless it holds
    /// it already.
    async fn put_model_file(&self, file: ModelFileRef, bytes: &[u8]) -> Result<(), String> {
        let store = self.model_bucket().await?;
        let name = file.hex();
        if let Ok(info) = store.info(&name).await {
            if !info.deleted && info.size as u64 == file.bytes {
                return Ok(());
            }
        }
        let object = ObjectMetadata {
            name: name.clone(),
            description: Some("an ONNX ranking model".into()),
            ..Default::default()
        };
        let mut reader = bytes;
        store.put(object, &mut reader).await.map_err(|err| format!("uploading model file {name}: {err}"))?;
        Ok(())
    }

    /// The file `file` names, from the bucket, checked against its hash.
    pub(super) async fn fetch_model_file(&self, file: ModelFileRef) -> Result<Vec<u8>, FetchError> {
        let name = file.hex();
        let store = self.model_bucket().await.map_err(FetchError::Transient)?;
        let mut object = match store.get(&name).await {
            Ok(object) => object,
            Err(err) if err.kind() == object_store::GetErrorKind::NotFound => {
                return Err(FetchError::Missing(format!("model file {name} is not in the bucket")))
            }
            Err(err) => return Err(FetchError::Transient(format!("model file {name}: {err}"))),
        };
        let mut bytes = Vec::with_capacity(usize::try_from(file.bytes).unwrap_or(0).min(recwal::MODEL_BYTES_MAX));
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| FetchError::Transient(format!("model file {name}: {err}")))?;
        if bytes.len() as u64 != file.bytes || Sha256::digest(&bytes).as_slice() != file.sha256 {
            return Err(FetchError::Missing(format!(
                "model file {name} in the bucket ({} bytes) does not match its name ({} bytes)",
                bytes.len(),
                file.bytes
            )));
        }
        Ok(bytes)
    }

    /// The file of a model addition, for the follower: a few tries; `None`
    /// when the bucket cannot give it (applied without it, the node then
    /// reports the fault), `Err` when the cluster is unreachable (the
    /// follower retries the message later).
    pub(super) async fn model_file_for_apply(&self, file: ModelFileRef) -> Result<Option<Vec<u8>>, String> {
        let mut last = String::new();
        for attempt in 0..FETCH_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.fetch_model_file(file).await {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(FetchError::Missing(reason)) => {
                    warn!(%reason, "a model added through the stream has no usable file in the bucket");
                    return Ok(None);
                }
                Err(FetchError::Transient(reason)) => last = reason,
            }
        }
        Err(last)
    }

    /// Fetches the files of live versions this node lacks (a node that
    /// joined from a snapshot, one that applied an addition without its
    /// file): at start, then every `RESTORE_EVERY` while the active
    /// version does not serve.
    pub(super) async fn restore_model_files(self: Arc<Self>, engine: Arc<Engine>) {
        let mut stop = self.stop.subscribe();
        let mut first = true;
        loop {
            let due = first || {
                let engine = Arc::clone(&engine);
                tokio::task::spawn_blocking(move || {
                    let status = engine.model_status();
                    status.fault.is_some() || status.route_fault.is_some()
                })
                .await
                .unwrap_or(false)
            };
            first = false;
            if due {
                self.restore_missing(&engine).await;
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(RESTORE_EVERY) => {}
            }
        }
    }

    async fn restore_missing(&self, engine: &Arc<Engine>) {
        let missing = {
            let engine = Arc::clone(engine);
            tokio::task::spawn_blocking(move || engine.model_files_missing()).await.unwrap_or_default()
        };
        for (version, file) in missing {
            let restored = match self.fetch_model_file(file).await {
                Ok(bytes) => {
                    let engine = Arc::clone(engine);
                    tokio::task::spawn_blocking(move || engine.restore_model_file(version, &bytes))
                        .await
                        .map_err(|err| err.to_string())
                        .and_then(|restored| restored.map_err(|err| err.to_string()))
                }
                Err(FetchError::Missing(reason) | FetchError::Transient(reason)) => Err(reason),
            };
            match restored {
                Ok(()) => info!(version, "model file restored from the bucket"),
                Err(reason) => warn!(version, %reason, "cannot restore a model file from the bucket"),
            }
        }
    }

    /// After this node applied an addition or activation it published:
    /// publishes the retirements its retention asks for now.
    async fn publish_retirements(&self, engine: &Arc<Engine>) {
        let messages = {
            let engine = Arc::clone(engine);
            tokio::task::spawn_blocking(move || engine.replica_model_retirements()).await
        };
        let messages = match messages {
            Ok(Ok(messages)) => messages,
            Ok(Err(err)) => return warn!(%err, "cannot list the model versions to retire"),
            Err(err) => return warn!(%err, "listing the model versions to retire panicked"),
        };
        for message in messages {
            if let Err(reason) = self.publish(message, &self.message_id(&[None])).await {
                warn!(%reason, "publishing a model retirement failed; the next addition or activation retries");
                return;
            }
        }
    }
}

/// `POST /admin/models` on a cluster node: the file checked here as on a
/// single node, put into the bucket, its addition published; 201 with the
/// version once this node applied it (numbered there, the same on every
/// node), 202 with the stream sequence if that took longer than
/// `cluster.apply_wait_ms`.
pub async fn add(app: &App, bytes: Vec<u8>) -> Result<Response, Problem> {
    let replica = replica_of(app)?;
    let (checked, bytes) =
        blocking(app.engine()?, move |engine| engine.replica_model_add(&bytes).map(|checked| (checked, bytes))).await?;
    let (message, file) = match checked {
        ReplicaModelAdd::Known(info) => return Ok((StatusCode::CREATED, Json(info)).into_response()),
        ReplicaModelAdd::Publish { message, file } => (message, file),
    };
    replica.put_model_file(file, &bytes).await.map_err(|reason| not_stored(&reason))?;
    drop(bytes);
    let sha256 = file.hex();
    let answer = move |engine: &Engine| engine.models().into_iter().find(|info| !info.retired && info.sha256 == sha256);
    let missing = "the addition was applied, but the version was retired before this answer: list /admin/models";
    publish_then(app, StatusCode::CREATED, move |_| Ok(message), answer, missing).await
}

/// `POST /admin/models/{version}/activate` (`Some`) and
/// `POST /admin/models/rollback` (`None`) on a cluster node: the version
/// loaded and warmed up here first (refused as on a single node), the
/// activation published; 200 with the version once this node applied it,
/// 202 with the stream sequence if that took longer.
pub async fn activate(app: &App, version: Option<u32>) -> Result<Response, Problem> {
    let message = move |engine: &Engine| engine.replica_model_activation(version);
    let missing = "the activation was applied, but no version is active now";
    publish_then(app, StatusCode::OK, message, active_version, missing).await
}

/// The canary and shadow routes on a cluster node (`PUT`/`DELETE`
/// `/admin/models/canary` and `/shadow`): checked here (the versions loaded
/// here too), published, answered with the routing once this node applied
/// it (every node applies it at the same stream position; the user split
/// is the same on every node).
pub async fn routes(app: &App, change: RouteChange) -> Result<Response, Problem> {
    let message = move |engine: &Engine| engine.replica_model_routes(change);
    publish_then(app, StatusCode::OK, message, |engine| Some(engine.model_status()), "").await
}

/// `POST /admin/models/canary/promote` on a cluster node: the canary's
/// activation, published.
pub async fn promote(app: &App) -> Result<Response, Problem> {
    let message = |engine: &Engine| engine.replica_model_promotion();
    let missing = "the promotion was applied, but no version is active now";
    publish_then(app, StatusCode::OK, message, active_version, missing).await
}

/// `DELETE /admin/models/{version}` on a cluster node: the retirement,
/// published.
pub async fn retire(app: &App, version: u32) -> Result<Response, Problem> {
    let message = move |engine: &Engine| engine.replica_model_retirement(version);
    let answer = move |engine: &Engine| engine.models().into_iter().find(|info| info.version == version);
    publish_then(app, StatusCode::OK, message, answer, "the retired version is not listed").await
}

fn active_version(engine: &Engine) -> Option<recwal::model::ModelInfo> {
    engine.models().into_iter().find(|info| info.active)
}

/// A registry change on a cluster node (`http::publish_checked`); once
/// this node applied it, the retirements its retention asks for are
/// published and the answer is `answer`'s view then (`status`, with the
/// stream sequence; a 409 with `missing` if it finds nothing); 202 with the
/// receipt if this node did not apply it within `cluster.apply_wait_ms`.
async fn publish_then<T: serde::Serialize + Send + 'static>(
    app: &App,
    status: StatusCode,
    message: impl FnOnce(&Engine) -> Result<Vec<u8>, recwal::EngineError> + Send + 'static,
    answer: impl FnOnce(&Engine) -> Option<T> + Send + 'static,
    missing: &str,
) -> Result<Response, Problem> {
    let stored = publish_checked(app, message).await?;
    if !stored.applied {
        return Ok(stored.receipt());
    }
    stored.replica.publish_retirements(&stored.engine).await;
    let found = blocking(Arc::clone(&stored.engine), move |engine| Ok(answer(engine))).await?;
    let found = found.ok_or_else(|| Problem::new(StatusCode::CONFLICT, "conflict", missing.to_string()))?;
    Ok(with_seq((status, Json(found)).into_response(), stored.seq))
}
