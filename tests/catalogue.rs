//! The catalogue through the engine's public API: item and user metadata,
//! hiding, publication and expiry, filtered reads that still return `n`
//! items, `latest`, pages, and all of it surviving restarts (snapshot and
//! log replay alike).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;

use recwal::wal::SyncPolicy;
use recwal::{
    Engine, EngineConfig, EngineError, Event, EventKind, Item, ItemFilter, ItemQuery, LabelCondition, LabelValue,
    RecommendRequest, Strategy, User,
};

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config
}

fn open(dir: &Path) -> Engine {
    Engine::open(dir, config()).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn ids(items: &[recwal::Scored]) -> Vec<String> {
    items.iter().map(|scored| scored.item.clone()).collect()
}

fn recommended(engine: &Engine, user: &str, n: usize, strategy: Strategy) -> Vec<String> {
    ids(&engine.recommend(&RecommendRequest::new(user, n, strategy)).unwrap().items)
}

/// Users u0..u{users} each view a window of items i0..i{items}; user
/// "me" views i0 and i1, so every strategy has neighbours and co-occurrences.
fn seed(engine: &Engine, users: usize, items: usize) {
    let mut events = Vec::new();
    for user in 0..users {
        for at in 0..6 {
            let item = (user * 3 + at * 7) % items;
            events.push(Event::new(format!("u{user}"), format!("i{item}"), EventKind::View));
        }
        events.push(Event::new(format!("u{user}"), "i0", EventKind::Click));
    }
    events.push(Event::new("me", "i0", EventKind::View));
    events.push(Event::new("me", "i1", EventKind::View));
    for chunk in events.chunks(500) {
        engine.ingest_batch(chunk).unwrap();
    }
}

#[test]
fn an_item_is_upserted_read_back_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let item = Item::new("book-1").category("fiction").category("classics").label("price", 12.5).label("lang", "en");
    let item = Item { timestamp_ms: Some(1_000), expires_ms: Some(i64::MAX / 2), ..item };
    engine.upsert_item(&item).unwrap();
    let read = engine.item("book-1").unwrap().unwrap();
    assert_eq!(read.labels.get("price"), Some(&LabelValue::Number(12.5)));
    assert_eq!(read.labels.get("lang"), Some(&LabelValue::Text("en".into())));
    let categories: HashSet<_> = read.categories.iter().cloned().collect();
    assert_eq!(categories, HashSet::from(["fiction".to_string(), "classics".to_string()]));
    assert_eq!((read.timestamp_ms, read.hidden), (Some(1_000), false));
    // An upsert replaces everything.
    engine.upsert_item(&Item::new("book-1").category("poetry")).unwrap();
    let read = engine.item("book-1").unwrap().unwrap();
    assert_eq!((read.categories, read.labels.len(), read.timestamp_ms), (vec!["poetry".to_string()], 0, None));
    assert_eq!(engine.item("nope").unwrap(), None);
    assert_eq!(engine.stats().catalogue_items, 1);
}

#[test]
fn a_removed_item_leaves_the_catalogue_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    for id in ["a", "b", "c"] {
        engine.upsert_item(&Item::new(id).category("x")).unwrap();
    }
    engine.remove_item("b").unwrap();
    assert_eq!(engine.item("b").unwrap(), None);
    let page: Vec<String> = engine.items(None, 10).unwrap().items.into_iter().map(|item| item.id).collect();
    assert_eq!(page, ["a", "c"]);
    // Paging past it still works, from it too.
    let after_a: Vec<String> = engine.items(Some("a"), 10).unwrap().items.into_iter().map(|item| item.id).collect();
    assert_eq!(after_a, ["c"]);
    assert_eq!(engine.items(Some("b"), 10).unwrap().items.len(), 1);
    // It cannot come back, nor be hidden or shown; removing it again is
    // harmless. Nothing refused was logged.
    let lsn = engine.lsn_applied();
    let refused = engine.upsert_item(&Item::new("b").category("y"));
    assert!(matches!(&refused, Err(EngineError::ItemRemoved(id)) if id == "b"), "{refused:?}");
    assert!(matches!(engine.set_item_hidden("b", true), Err(EngineError::UnknownItem(_))));
    assert_eq!(engine.lsn_applied(), lsn);
    engine.remove_item("b").unwrap();
    // The same after a restart.
    engine.close().unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.item("b").unwrap(), None);
    assert_eq!(engine.items(None, 10).unwrap().items.len(), 2);
}

#[test]
fn a_refused_item_or_user_names_its_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.upsert_item(&Item::new("ok")).unwrap();
    let lsn = engine.lsn_applied();
    let digest = engine.state_digest();
    let field = |result: Result<u64, EngineError>| match result {
        Err(EngineError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(field(engine.upsert_item(&Item::new(""))), "item.id");
    assert_eq!(field(engine.upsert_item(&Item::new("x").category("a\u{0}b"))), "item.categories[0]");
    assert_eq!(field(engine.upsert_item(&Item::new("x").label("price", f64::INFINITY))), "item.labels.price");
    assert_eq!(field(engine.upsert_item(&Item::new("x").published(5).expires(4))), "item.expires_ms");
    let many = (0..=recwal::LABELS_MAX).fold(User { id: "u".into(), ..User::default() }, |mut user, at| {
        user.labels.insert(format!("k{at}"), LabelValue::Number(1.0));
        user
    });
    assert_eq!(field(engine.upsert_user(&many)), "user.labels");
    let query = ItemQuery::top(5).in_categories(["x".repeat(recwal::CATEGORY_BYTES_MAX + 1)]);
    assert!(
        matches!(engine.popular_matching(&query), Err(EngineError::Invalid { field, .. }) if field == "filter.categories[0]")
    );
    assert!(
        matches!(engine.popular_matching(&ItemQuery::top(5).offset(recwal::N_MAX)), Err(EngineError::Invalid { field, .. }) if field == "offset")
    );
    assert!(matches!(engine.set_item_hidden("never-seen", true), Err(EngineError::UnknownItem(_))));
    assert_eq!((engine.lsn_applied(), engine.state_digest()), (lsn, digest));
}

#[test]
fn a_hidden_item_leaves_the_very_next_answer_and_comes_back_when_shown() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 40, 30);
    for strategy in Strategy::ALL {
        let before = recommended(&engine, "me", 5, strategy);
        let top = before[0].clone();
        engine.set_item_hidden(&top, true).unwrap();
        let hidden = recommended(&engine, "me", 5, strategy);
        assert!(!hidden.contains(&top), "{strategy:?}: hidden {top} still recommended: {hidden:?}");
        assert_eq!(hidden.len(), 5, "{strategy:?}: the answer is still full");
        assert!(!ids(&engine.popular(30).unwrap()).contains(&top));
        assert!(!ids(&engine.similar_items("i0", 30).unwrap()).contains(&top));
        engine.set_item_hidden(&top, false).unwrap();
        assert_eq!(recommended(&engine, "me", 5, strategy), before, "{strategy:?}: shown again, same answer");
    }
    // An item with metadata can be hidden by its upsert too.
    engine.upsert_item(&Item::new("i0").hidden(true)).unwrap();
    assert!(!ids(&engine.popular(30).unwrap()).contains(&"i0".to_string()));
}

#[test]
fn unpublished_and_expired_items_are_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 40, 30);
    let now = now_ms();
    engine.upsert_item(&Item::new("i0").published(now + 3_600_000)).unwrap();
    engine.upsert_item(&Item::new("i1").expires(now - 1)).unwrap();
    engine.upsert_item(&Item::new("i2").published(now - 10).expires(now + 3_600_000)).unwrap();
    for answer in [ids(&engine.popular(30).unwrap()), recommended(&engine, "u3", 27, Strategy::Blend)] {
        assert!(!answer.contains(&"i0".to_string()) && !answer.contains(&"i1".to_string()), "{answer:?}");
    }
    assert!(ids(&engine.popular(30).unwrap()).contains(&"i2".to_string()));
    let latest: Vec<String> = engine.latest(&ItemQuery::top(10)).unwrap().into_iter().map(|item| item.id).collect();
    assert_eq!(latest, vec!["i2".to_string()]);
}

/// 1,000 items, 10 of them (1%) in category "rare": every strategy returns
/// `n` = 10 items, all of them rare, for users whose neighbours never
/// touched a rare item.
#[test]
fn a_filter_matching_one_percent_of_the_catalogue_still_returns_n_items() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 300, 1000);
    let rare: Vec<String> = (0..10).map(|at| format!("i{}", 97 * at + 5)).collect();
    for item in 0..1000 {
        let id = format!("i{item}");
        let category = if rare.contains(&id) { "rare" } else { "common" };
        engine.upsert_item(&Item::new(id).category(category)).unwrap();
    }
    for strategy in Strategy::ALL {
        let request = RecommendRequest::new("me", 10, strategy).in_categories(["rare"]);
        let answer = ids(&engine.recommend(&request).unwrap().items);
        let got: HashSet<_> = answer.iter().cloned().collect();
        assert_eq!(got, rare.iter().cloned().collect::<HashSet<_>>(), "{strategy:?}");
        assert_eq!(answer.len(), 10);
    }
    let popular = ids(&engine.popular_matching(&ItemQuery::top(10).in_categories(["rare"])).unwrap());
    assert_eq!(popular.len(), 10);
    // Similar items: the rare ones that co-occur with i0 (every seeded user
    // clicked i0, so every rare item someone viewed), all of them.
    let viewed: HashSet<String> =
        (0..300).flat_map(|user| (0..6).map(move |at| format!("i{}", (user * 3 + at * 7) % 1000))).collect();
    let co_occurring: HashSet<String> = rare.iter().filter(|item| viewed.contains(*item)).cloned().collect();
    assert!(co_occurring.len() >= 5, "the seed views most rare items");
    let similar = ids(&engine.similar_matching("i0", &ItemQuery::top(10).in_categories(["rare"])).unwrap());
    assert_eq!(similar.into_iter().collect::<HashSet<_>>(), co_occurring);
    // Asking for more than exist returns all that do.
    assert_eq!(engine.popular_matching(&ItemQuery::top(50).in_categories(["rare"])).unwrap().len(), 10);
    // An unknown category matches nothing; several match any of them.
    assert!(engine.popular_matching(&ItemQuery::top(5).in_categories(["none"])).unwrap().is_empty());
    assert_eq!(engine.popular_matching(&ItemQuery::top(20).in_categories(["none", "rare"])).unwrap().len(), 10);
}

#[test]
fn label_conditions_select_by_text_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 40, 30);
    for item in 0..30 {
        let brand = if item % 2 == 0 { "acme" } else { "other" };
        engine.upsert_item(&Item::new(format!("i{item}")).label("brand", brand).label("price", item as f64)).unwrap();
    }
    let filter = ItemFilter {
        categories: Vec::new(),
        labels: vec![
            LabelCondition::Equals { key: "brand".into(), value: LabelValue::Text("acme".into()) },
            LabelCondition::AtLeast { key: "price".into(), value: 10.0 },
            LabelCondition::AtMost { key: "price".into(), value: 20.0 },
        ],
    };
    let found = ids(&engine.popular_matching(&ItemQuery::top(30).filter(filter.clone())).unwrap());
    let mut found_sorted = found.clone();
    found_sorted.sort();
    let mut expected: Vec<String> = (10..=20).filter(|item| item % 2 == 0).map(|item| format!("i{item}")).collect();
    expected.sort();
    assert_eq!(found_sorted, expected);
    let answer = engine.recommend(&RecommendRequest::new("me", 6, Strategy::UserCf).filter(filter)).unwrap();
    assert_eq!(answer.items.len(), 6);
    assert!(answer.items.iter().all(|scored| expected.contains(&scored.item)));
    // A key no item has matches nothing.
    let unknown = ItemFilter {
        categories: Vec::new(),
        labels: vec![LabelCondition::AtLeast { key: "weight".into(), value: 0.0 }],
    };
    assert!(engine.popular_matching(&ItemQuery::top(5).filter(unknown)).unwrap().is_empty());
}

#[test]
fn latest_lists_the_newest_items_by_category_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    for item in 0..20i64 {
        let mut entry = Item::new(format!("n{item}")).published(1_000 + item);
        entry = entry.category(if item % 2 == 0 { "even" } else { "odd" });
        if item % 5 == 0 {
            entry = entry.category("five");
        }
        engine.upsert_item(&entry).unwrap();
    }
    engine.upsert_item(&Item::new("undated").category("even")).unwrap();
    let names =
        |query: ItemQuery| -> Vec<String> { engine.latest(&query).unwrap().into_iter().map(|item| item.id).collect() };
    assert_eq!(names(ItemQuery::top(3)), ["n19", "n18", "n17"]);
    assert_eq!(names(ItemQuery::top(3).in_categories(["even"])), ["n18", "n16", "n14"]);
    // n10 and n0 are in both "even" and "five": listed once each.
    assert_eq!(names(ItemQuery::top(5).in_categories(["five", "even"])), ["n18", "n16", "n15", "n14", "n12"]);
    assert_eq!(names(ItemQuery::top(20).in_categories(["five", "even"])).len(), 12);
    engine.set_item_hidden("n18", true).unwrap();
    assert_eq!(names(ItemQuery::top(2).in_categories(["even"])), ["n16", "n14"]);
    assert_eq!(names(ItemQuery::top(2).in_categories(["even"]).offset(1)), ["n14", "n12"]);
}

#[test]
fn pages_concatenate_to_the_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 60, 50);
    for strategy in Strategy::ALL {
        let whole = recommended(&engine, "u7", 30, strategy);
        let mut pages = Vec::new();
        for page in 0..3 {
            let request = RecommendRequest::new("u7", 10, strategy).offset(page * 10);
            pages.extend(ids(&engine.recommend(&request).unwrap().items));
        }
        assert_eq!(pages, whole, "{strategy:?}");
    }
    let whole = ids(&engine.popular(40).unwrap());
    let paged: Vec<String> =
        (0..4).flat_map(|page| ids(&engine.popular_matching(&ItemQuery::top(10).offset(page * 10)).unwrap())).collect();
    assert_eq!(paged, whole);
    // The catalogue list: pages with a cursor, in catalogue order, complete.
    for item in 0..25 {
        engine.upsert_item(&Item::new(format!("c{item}"))).unwrap();
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine.items(after.as_deref(), 7).unwrap();
        listed.extend(page.items.into_iter().map(|item| item.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, (0..25).map(|item| format!("c{item}")).collect::<Vec<_>>());
}

#[test]
fn users_have_labels_until_they_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut user = User { id: "alice".into(), ..User::default() };
    user.labels.insert("country".into(), LabelValue::Text("fr".into()));
    user.labels.insert("age".into(), LabelValue::Number(31.0));
    engine.upsert_user(&user).unwrap();
    assert_eq!(engine.user("alice").unwrap(), Some(user));
    engine.forget_user("alice").unwrap();
    assert_eq!(engine.user("alice").unwrap(), None);
    assert_eq!(engine.user("bob").unwrap(), None);
}

#[test]
fn the_catalogue_survives_restarts_from_the_log_and_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 30, 20);
    engine.upsert_item(&Item::new("i3").category("a").label("price", 3.0).published(7)).unwrap();
    engine.upsert_user(&User { id: "u1".into(), labels: [("k".to_string(), LabelValue::Number(1.0))].into() }).unwrap();
    engine.checkpoint().unwrap();
    engine.upsert_item(&Item::new("i4").category("b").published(9)).unwrap();
    engine.set_item_hidden("i5", true).unwrap();
    let digest = engine.state_digest();
    let answer = recommended(&engine, "me", 8, Strategy::Blend);
    engine.close().unwrap();

    // From the snapshot plus the log after it.
    let engine = open(dir.path());
    assert_eq!(engine.state_digest(), digest);
    assert_eq!(recommended(&engine, "me", 8, Strategy::Blend), answer);
    assert_eq!(engine.item("i3").unwrap().unwrap().categories, vec!["a".to_string()]);
    assert!(engine.item("i5").unwrap().unwrap().hidden);
    engine.close().unwrap();

    // From the log alone.
    for entry in std::fs::read_dir(dir.path().join("snapshots")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let engine = open(dir.path());
    assert_eq!(engine.state_digest(), digest);
    let latest: Vec<String> = engine.latest(&ItemQuery::top(5)).unwrap().into_iter().map(|item| item.id).collect();
    assert_eq!(latest, ["i4", "i3"]);
}

fn session(items: &[&str]) -> Vec<recwal::SessionEvent> {
    items
        .iter()
        .map(|item| recwal::SessionEvent { item: item.to_string(), kind: EventKind::View, weight: None })
        .collect()
}

#[test]
fn a_session_is_answered_like_a_user_with_those_events_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    seed(&engine, 60, 40);
    let lsn = engine.lsn_applied();
    // "me" viewed i0 and i1: a session of the same views gets the same
    // ItemRank and popularity answers (the graph is the same either way).
    for strategy in [Strategy::ItemRank, Strategy::ItemRankExact, Strategy::Popularity] {
        let request = recwal::SessionRequest::new(session(&["i0", "i1"]), 8, strategy);
        let answer = engine.recommend_session(&request).unwrap();
        let user = engine.recommend(&RecommendRequest::new("me", 8, strategy)).unwrap();
        assert_eq!(answer.items, user.items, "{strategy:?}");
        assert!(!answer.cold_start);
    }
    // UserCF: neighbours found through the session's items, with reasons.
    for strategy in [Strategy::UserCf, Strategy::Blend] {
        let request = recwal::SessionRequest::new(session(&["i3", "i10", "i17"]), 6, strategy);
        let answer = engine.recommend_session(&request).unwrap();
        assert_eq!(answer.items.len(), 6, "{strategy:?}");
        assert!(answer.items.iter().all(|scored| !["i3", "i10", "i17"].contains(&scored.item.as_str())));
        assert!(answer.items[0].reasons.iter().any(|reason| matches!(reason, recwal::Reason::Neighbour { .. })));
    }
    // Filters and pages apply as for users.
    for item in 0..40 {
        engine.upsert_item(&Item::new(format!("i{item}")).category(if item < 4 { "few" } else { "many" })).unwrap();
    }
    let (lsn, digest) = (lsn.max(engine.lsn_applied()), engine.state_digest());
    let mut request = recwal::SessionRequest::new(session(&["i5", "i6"]), 4, Strategy::UserCf);
    request.filter.categories = vec!["few".into()];
    let answer = engine.recommend_session(&request).unwrap();
    assert_eq!(
        ids(&answer.items).into_iter().collect::<HashSet<_>>(),
        ["i0", "i1", "i2", "i3"].map(String::from).into()
    );
    request.filter.categories.clear();
    request.n = 10;
    let whole = ids(&engine.recommend_session(&request).unwrap().items);
    request.n = 5;
    request.offset = 5;
    assert_eq!(ids(&engine.recommend_session(&request).unwrap().items), whole[5..].to_vec());
    // Only unknown items: a cold start.
    let cold = engine.recommend_session(&recwal::SessionRequest::new(session(&["nope"]), 3, Strategy::UserCf)).unwrap();
    assert!(cold.cold_start);
    assert_eq!(cold.items.len(), 3);
    assert_eq!((engine.lsn_applied(), engine.state_digest()), (lsn, digest), "a session wrote something");
}

#[test]
fn a_bad_session_event_is_refused_by_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut events = session(&["i0", "i1"]);
    events[1].kind = EventKind::Rating(99.0);
    let refused = engine.recommend_session(&recwal::SessionRequest::new(events, 3, Strategy::UserCf));
    assert!(matches!(refused, Err(EngineError::Invalid { field, .. }) if field == "events[1].kind.rating"));
    let events = session(&vec!["i"; recwal::SESSION_EVENTS_MAX + 1]);
    let refused = engine.recommend_session(&recwal::SessionRequest::new(events, 3, Strategy::UserCf));
    assert!(matches!(refused, Err(EngineError::Invalid { field, .. }) if field == "events"));
}

/// Everything but the expired interactions, as an engine that never saw them.
#[test]
fn expired_feedback_leaves_the_state_as_if_it_never_happened_and_stays_expired() {
    let (dir, clean_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engine = open(dir.path());
    let clean = open(clean_dir.path());
    let hour = 3_600_000i64;
    let base = now_ms() - 48 * hour;
    let mut old = Vec::new();
    let mut fresh = Vec::new();
    for user in 0..30 {
        for at in 0..5 {
            let item = format!("i{}", (user * 5 + at * 3) % 23);
            let kind = if at == 4 { EventKind::Rating(4.0) } else { EventKind::View };
            // Users 0..10 were active only long ago.
            let when = if user < 10 { base } else { base + 40 * hour + at as i64 };
            let event = Event::new(format!("u{user}"), item, kind).at(when);
            if user < 10 {
                old.push(event.clone())
            } else {
                fresh.push(event.clone())
            }
        }
    }
    engine.ingest_batch(&old).unwrap();
    engine.ingest_batch(&fresh).unwrap();
    clean.ingest_batch(&fresh).unwrap();
    engine.expire_feedback_before(base + 24 * hour).unwrap();
    let answers = |engine: &Engine| -> Vec<String> {
        let mut out = Vec::new();
        for user in 0..30 {
            for strategy in Strategy::ALL {
                out.push(format!("{:?}", recommended(engine, &format!("u{user}"), 5, strategy)));
            }
        }
        out.push(format!("{:?}", engine.popular(10).unwrap()));
        out
    };
    assert_eq!(answers(&engine), answers(&clean));
    assert!(engine.interactions("u3").unwrap().is_empty(), "an expired user's interactions are gone");
    assert_eq!(engine.stats().pairs, clean.stats().pairs, "the expired pairs' memory is released");
    let digest = engine.state_digest();
    engine.checkpoint().unwrap();
    engine.close().unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.state_digest(), digest);
    assert_eq!(answers(&engine), answers(&clean));
    assert!(matches!(engine.expire_feedback_before(-1), Err(EngineError::Invalid { .. })));
}

#[test]
fn the_engine_expires_feedback_older_than_its_ttl_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.feedback.ttl = Some(std::time::Duration::from_secs(3600));
    config.feedback.expire_every = std::time::Duration::from_secs(1);
    let engine = Engine::open(dir.path(), config).unwrap();
    let two_hours_ago = now_ms() - 7_200_000;
    engine.ingest(Event::new("old", "a", EventKind::View).at(two_hours_ago)).unwrap();
    engine.ingest(Event::new("new", "a", EventKind::View)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !engine.interactions("old").unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the old interaction never expired");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(engine.interactions("new").unwrap().len(), 1);
    let mut bad = EngineConfig::default();
    bad.feedback.ttl = Some(std::time::Duration::from_millis(10));
    assert!(matches!(Engine::open(dir.path(), bad).err(), Some(EngineError::InvalidConfig { .. })));
}
