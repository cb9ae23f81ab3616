//! Ranking models on replicas (docs/CLUSTER.md, "Models"): add, activate,
//! roll back and retire travel as stream messages, the file beside them;
//! every replica numbers versions the same, swaps at the activation's
//! stream position, and agrees on the replica digest — also a replica that
//! lacks a file (it answers un-ranked and says why until the file is
//! restored), one restarted, and messages published from an older view.
#![allow(clippy::unwrap_used)]

mod model_support;

use model_support::{config, fixture_bytes, linear_score};
use recwal::{model_file_of, Engine, EngineError, Ranking, RecommendRequest, ReplicaModelAdd, Strategy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The seed of `model_support::seed`, as one stream message.
fn seed_message(engine: &Engine) -> Result<Vec<u8>, EngineError> {
    engine.replica_events(&model_support::seed_events())
}

fn add_message(engine: &Engine, fixture: &str) -> Result<Vec<u8>, EngineError> {
    match engine.replica_model_add(&fixture_bytes(fixture))? {
        ReplicaModelAdd::Publish { message, file } => {
            assert_eq!(model_file_of(&message), Some(file));
            Ok(message)
        }
        ReplicaModelAdd::Known(info) => panic!("{fixture} is live already as v{}", info.version),
    }
}

/// A replica: an engine and the files it is given with additions.
struct Node {
    _dir: tempfile::TempDir,
    engine: Engine,
    /// Whether it gets the file of an addition (per fixture name).
    gets_file: fn(&str) -> bool,
}

impl Node {
    fn new(gets_file: fn(&str) -> bool) -> Result<Node, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(dir.path(), config())?;
        Ok(Node { _dir: dir, engine, gets_file })
    }

    fn apply(&self, seq: u64, message: &[u8], fixture: Option<&str>) -> Result<(), EngineError> {
        let file = fixture.filter(|name| (self.gets_file)(name)).map(fixture_bytes);
        self.engine.apply_replicated_with(seq, message, file.as_deref()).map(drop)
    }
}

/// Applies stream message `seq + 1` on every node (each with the file if
/// it gets it) and checks that they agree on the replica digest after it.
fn publish_to(nodes: &[&Node], seq: &mut u64, message: &[u8], fixture: Option<&str>) -> Result<u64, EngineError> {
    *seq += 1;
    for node in nodes {
        node.apply(*seq, message, fixture)?;
    }
    let digest = nodes[0].engine.replica_position();
    for node in nodes {
        assert_eq!(node.engine.replica_position(), digest, "replicas differ after message {seq}");
    }
    Ok(*seq)
}

fn ranked_by(engine: &Engine) -> Ranking {
    let request = RecommendRequest::new("heavy", 5, Strategy::UserCf);
    engine.recommend(&request).unwrap().ranking
}

/// Every item's model score is linear fixture `fixture`'s.
fn assert_scored_by(engine: &Engine, fixture: &str) {
    let request = RecommendRequest::new("u3", 5, Strategy::UserCf);
    let features = engine.candidate_features(&request).unwrap();
    let answer = engine.recommend(&request).unwrap();
    assert!(!answer.items.is_empty());
    for item in &answer.items {
        let row = &features.iter().find(|(name, _)| name == &item.item).unwrap().1;
        let got = item.model_score.unwrap_or_else(|| panic!("not ranked: {:?}", answer.ranking));
        assert!((got - linear_score(fixture, row)).abs() < 1e-4, "{}: {got} is not {fixture}'s", item.item);
    }
}

#[test]
fn replicas_number_swap_and_retire_models_at_the_same_stream_position() -> TestResult {
    // `a` and `b` get every file; `c` never gets linear_v2's.
    let a = Node::new(|_| true)?;
    let b = Node::new(|_| true)?;
    let c = Node::new(|name| name != "linear_v2")?;
    let nodes = [&a, &b, &c];
    let mut seq = 0;
    let mut publish = |message: Vec<u8>, fixture: Option<&str>| publish_to(&nodes, &mut seq, &message, fixture);
    publish(seed_message(&a.engine)?, None)?;
    // Messages from `b`'s view; validating stored and logged nothing.
    let add_v1 = add_message(&b.engine, "linear_v1")?;
    assert!(b.engine.models().is_empty() && b.engine.model_files_missing().is_empty());
    publish(add_v1.clone(), Some("linear_v1"))?;
    // The same file again (another node's retry, from an older view):
    // no second version.
    publish(add_v1, Some("linear_v1"))?;
    assert!(matches!(b.engine.replica_model_add(&fixture_bytes("linear_v1"))?, ReplicaModelAdd::Known(_)));
    publish(add_message(&c.engine, "linear_v2")?, Some("linear_v2"))?;
    for node in nodes {
        let versions: Vec<u32> = node.engine.models().iter().map(|info| info.version).collect();
        assert_eq!(versions, vec![1, 2]);
    }
    assert!(a.engine.model_files_missing().is_empty());
    assert_eq!(c.engine.model_files_missing().iter().map(|(version, _)| *version).collect::<Vec<_>>(), vec![2]);

    let at_v1 = publish(a.engine.replica_model_activation(Some(1))?, None)?;
    for node in nodes {
        assert_eq!(ranked_by(&node.engine), Ranking::Model { version: 1 });
        assert_eq!(node.engine.model_status().swapped_at_stream_seq, Some(at_v1));
        assert_scored_by(&node.engine, "linear_v1");
    }
    // `c` lacks v2's file: it refuses to publish its activation ...
    assert!(matches!(c.engine.replica_model_activation(Some(2)), Err(EngineError::BadModel(_))));
    // ... and when another node publishes it, `c` applies it as every
    // replica does (same digest) but answers un-ranked, saying why.
    let at_v2 = publish(a.engine.replica_model_activation(Some(2))?, None)?;
    for node in [&a, &b] {
        assert_eq!(ranked_by(&node.engine), Ranking::Model { version: 2 });
        assert_scored_by(&node.engine, "linear_v2");
    }
    let status = c.engine.model_status();
    assert_eq!((status.active, status.serving, status.swapped_at_stream_seq), (Some(2), None, Some(at_v2)));
    assert!(status.fault.as_deref().is_some_and(|fault| fault.contains("v2")), "{status:?}");
    assert!(matches!(ranked_by(&c.engine), Ranking::Unranked { reason: Some(_) }));
    // The file restored (fetched again): it serves, nothing logged.
    let lsn = c.engine.lsn_applied();
    assert!(c.engine.restore_model_file(2, &fixture_bytes("linear_v1")).is_err(), "a file of another hash");
    c.engine.restore_model_file(2, &fixture_bytes("linear_v2"))?;
    assert_eq!((ranked_by(&c.engine), c.engine.lsn_applied()), (Ranking::Model { version: 2 }, lsn));
    assert!(c.engine.model_files_missing().is_empty());

    // Rollback to v1 everywhere.
    let back = publish(b.engine.replica_model_activation(None)?, None)?;
    for node in nodes {
        assert_eq!(ranked_by(&node.engine), Ranking::Model { version: 1 });
        assert_eq!(node.engine.model_status().swapped_at_stream_seq, Some(back));
    }
    // A retirement of v1 published from a view where v1 was never activated
    // (a node with retention 1 that had not applied the activations yet):
    // v1 is active now, so it is a no-op everywhere.
    let stale_retirement = {
        let dir = tempfile::tempdir()?;
        let mut keep_one = config();
        keep_one.models.retention = 1;
        let old = Engine::open(dir.path(), keep_one)?;
        old.apply_replicated_with(1, &seed_message(&old)?, None)?;
        for (seq, fixture) in [(2, "linear_v1"), (3, "linear_v2")] {
            old.apply_replicated_with(seq, &add_message(&old, fixture)?, Some(&fixture_bytes(fixture)))?;
        }
        let mut retirements = old.replica_model_retirements()?;
        assert_eq!(retirements.len(), 1, "v1");
        retirements.remove(0)
    };
    publish(stale_retirement, None)?;
    for node in nodes {
        assert_eq!(ranked_by(&node.engine), Ranking::Model { version: 1 });
        assert!(node.engine.models().iter().all(|info| !info.retired));
        assert!(node.engine.model_files_missing().is_empty());
    }
    Ok(())
}

#[test]
fn retention_retires_through_the_stream_and_a_restart_serves_the_same_version() -> TestResult {
    let mut small = config();
    small.models.retention = 1;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut engines = vec![Engine::open(dirs[0].path(), small.clone())?, Engine::open(dirs[1].path(), small.clone())?];
    let mut seq = 0;
    let mut publish = |engines: &[Engine], message: Vec<u8>, file: Option<&str>| -> Result<u64, EngineError> {
        seq += 1;
        let bytes = file.map(fixture_bytes);
        for engine in engines {
            engine.apply_replicated_with(seq, &message, bytes.as_deref())?;
        }
        assert_eq!(engines[0].replica_position(), engines[1].replica_position(), "after message {seq}");
        Ok(seq)
    };
    publish(&engines, seed_message(&engines[0])?, None)?;
    publish(&engines, add_message(&engines[0], "linear_v1")?, Some("linear_v1"))?;
    publish(&engines, engines[0].replica_model_activation(Some(1))?, None)?;
    publish(&engines, add_message(&engines[1], "linear_v2")?, Some("linear_v2"))?;
    publish(&engines, engines[1].replica_model_activation(Some(2))?, None)?;
    // v1 is still reachable by a rollback: nothing to retire yet.
    assert!(engines[1].replica_model_retirements()?.is_empty());
    publish(&engines, add_message(&engines[0], "mlp_v1")?, Some("mlp_v1"))?;
    // v3 is the newest: nothing to retire yet.
    assert!(engines[0].replica_model_retirements()?.is_empty());
    publish(&engines, add_message(&engines[1], "mlp_v2")?, Some("mlp_v2"))?;
    // v1, v2 are reachable by rollbacks (the stack), v4 is the newest.
    let retirements = engines[0].replica_model_retirements()?;
    assert_eq!(retirements.len(), 1);
    // Published twice (two nodes' views): retired once.
    publish(&engines, retirements[0].clone(), None)?;
    publish(&engines, retirements[0].clone(), None)?;
    for engine in &engines {
        let live: Vec<u32> = engine.models().iter().filter(|info| !info.retired).map(|info| info.version).collect();
        assert_eq!(live, vec![1, 2, 4]);
        assert!(engine.model_files_missing().is_empty());
    }
    // An activation of the retired version, published before the
    // retirement was applied, is a no-op on every replica.
    let stale = {
        let dir = tempfile::tempdir()?;
        let scratch = Engine::open(dir.path(), small.clone())?;
        for (at, (message, file)) in [
            (seed_message(&scratch)?, None),
            (add_message(&scratch, "linear_v1")?, Some("linear_v1")),
            (add_message(&scratch, "linear_v2")?, Some("linear_v2")),
            (add_message(&scratch, "mlp_v1")?, Some("mlp_v1")),
        ]
        .into_iter()
        .enumerate()
        {
            scratch.apply_replicated_with(at as u64 + 1, &message, file.map(fixture_bytes).as_deref())?;
        }
        scratch.replica_model_activation(Some(3))?
    };
    publish(&engines, stale, None)?;
    assert_eq!(ranked_by(&engines[0]), Ranking::Model { version: 2 });
    // A restart (one of them from a checkpoint) serves the same version
    // with the same digest.
    let before = engines[0].replica_position();
    engines[1].checkpoint()?;
    for engine in engines.drain(..) {
        engine.close()?;
    }
    for dir in &dirs {
        let engine = Engine::open(dir.path(), small.clone())?;
        assert_eq!(engine.replica_position(), before);
        assert_eq!(ranked_by(&engine), Ranking::Model { version: 2 });
        assert_scored_by(&engine, "linear_v2");
    }
    Ok(())
}

#[test]
fn a_canary_set_through_the_stream_splits_users_alike_on_every_replica() -> TestResult {
    let a = Node::new(|_| true)?;
    let b = Node::new(|_| true)?;
    // `c` lacks linear_v2's file: the canary cannot load there.
    let c = Node::new(|name| name != "linear_v2")?;
    let nodes = [&a, &b, &c];
    let mut seq = 0;
    let mut publish = |message: Vec<u8>, fixture: Option<&str>| publish_to(&nodes, &mut seq, &message, fixture);
    publish(seed_message(&a.engine)?, None)?;
    publish(add_message(&a.engine, "linear_v1")?, Some("linear_v1"))?;
    publish(add_message(&a.engine, "linear_v2")?, Some("linear_v2"))?;
    publish(a.engine.replica_model_activation(Some(1))?, None)?;
    // Checked where it is taken: the active version cannot be the canary.
    let refused = b.engine.replica_model_routes(recwal::RouteChange::Canary { version: 1, per_mille: 500 });
    assert!(matches!(refused, Err(EngineError::Invalid { .. })), "{refused:?}");
    publish(b.engine.replica_model_routes(recwal::RouteChange::Canary { version: 2, per_mille: 500 })?, None)?;
    let users: Vec<String> = (0..12).map(|user| format!("u{user}")).chain(["heavy".to_string()]).collect();
    let ranked = |engine: &Engine, user: &str| {
        engine.recommend(&RecommendRequest::new(user, 5, Strategy::UserCf)).unwrap().ranking.version()
    };
    for user in &users {
        let expected = if recwal::model::user_bucket(user) < 500 { 2 } else { 1 };
        assert_eq!(ranked(&a.engine, user), Some(expected), "{user} on a");
        assert_eq!(ranked(&b.engine, user), Some(expected), "{user} on b");
        // c: the stable version for everyone, the fault reported.
        assert_eq!(ranked(&c.engine, user), Some(1), "{user} on c");
    }
    let status = c.engine.model_status();
    assert_eq!(status.canary.map(|canary| (canary.version, canary.loaded)), Some((2, false)));
    assert!(status.route_fault.is_some_and(|fault| fault.contains("v2")));
    // The file restored (fetched again): the canary gets its users on c too.
    assert_eq!(c.engine.model_files_missing().iter().map(|(version, _)| *version).collect::<Vec<_>>(), vec![2]);
    let lsn = c.engine.lsn_applied();
    c.engine.restore_model_file(2, &model_support::fixture_bytes("linear_v2"))?;
    let status = c.engine.model_status();
    assert_eq!(
        (status.canary.map(|canary| canary.loaded), status.route_fault, c.engine.lsn_applied()),
        (Some(true), None, lsn)
    );
    for user in &users {
        let expected = if recwal::model::user_bucket(user) < 500 { 2 } else { 1 };
        assert_eq!(ranked(&c.engine, user), Some(expected), "{user} on c, restored");
    }
    // Promoted through the stream: v2 for everyone where it loads.
    publish(a.engine.replica_model_promotion()?, None)?;
    for node in [&a, &b] {
        assert!(node.engine.model_status().canary.is_none());
        assert!(users.iter().all(|user| ranked(&node.engine, user) == Some(2)));
    }
    // v1, reachable by a rollback, retired through the stream.
    publish(b.engine.replica_model_retirement(1)?, None)?;
    assert!(a.engine.models().iter().any(|info| info.version == 1 && info.retired));
    assert!(matches!(a.engine.replica_model_retirement(2), Err(EngineError::Invalid { .. })), "the active one");
    Ok(())
}
