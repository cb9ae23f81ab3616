//! `recwal import --items`: catalogue files (CSV, TSV, JSONL) imported into
//! a fresh data dir and read back through the engine; a bad file writes
//! nothing.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use recwal::{Engine, EngineConfig, ItemQuery, LabelValue};

fn import(file: &Path, data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["import", "--items"])
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RECWAL_DATA_DIR")
        .output()
        .unwrap()
}

fn open(dir: &Path) -> Engine {
    Engine::open(dir, EngineConfig::default()).unwrap()
}

#[test]
fn a_csv_items_file_is_imported_with_categories_labels_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    std::fs::write(
        &file,
        "id,categories,timestamp,expires,hidden,label.price,label.brand\n\
         m1,Drama|Comedy,1995-01-01,,,12.5,acme\n\
         m2,Drama,788918400001,2100-01-01T00:00:00Z,false,,\"a, b\"\n\
         m3,,,,true,3,\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let output = import(&file, &data);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("imported 3 items"));
    let engine = open(&data);
    let m1 = engine.item("m1").unwrap().unwrap();
    assert_eq!(m1.categories, ["Drama", "Comedy"]);
    assert_eq!(m1.timestamp_ms, Some(788_918_400_000));
    assert_eq!(m1.expires_ms, None);
    assert_eq!(m1.labels.get("price"), Some(&LabelValue::Number(12.5)));
    assert_eq!(m1.labels.get("brand"), Some(&LabelValue::Text("acme".into())));
    let m2 = engine.item("m2").unwrap().unwrap();
    assert_eq!((m2.timestamp_ms, m2.expires_ms), (Some(788_918_400_001), Some(4_102_444_800_000)));
    assert_eq!(m2.labels.get("brand"), Some(&LabelValue::Text("a, b".into())));
    assert_eq!(m2.labels.get("price"), None, "an empty cell is no label");
    let m3 = engine.item("m3").unwrap().unwrap();
    assert!(m3.hidden);
    assert!(m3.categories.is_empty());
    // The newest first, by category.
    let latest: Vec<String> =
        engine.latest(&ItemQuery::top(10).in_categories(["Drama"])).unwrap().into_iter().map(|item| item.id).collect();
    assert_eq!(latest, ["m2", "m1"]);
}

#[test]
fn a_jsonl_items_file_is_imported_and_a_second_import_replaces_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"a\",\"categories\":[\"x\"],\"labels\":{\"n\":\"7\",\"p\":7},\"timestamp_ms\":5}\n\n\
         {\"id\":\"b\",\"hidden\":true}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    assert!(import(&file, &data).status.success());
    {
        let engine = open(&data);
        let a = engine.item("a").unwrap().unwrap();
        assert_eq!(a.labels.get("n"), Some(&LabelValue::Text("7".into())), "JSON keeps text text");
        assert_eq!(a.labels.get("p"), Some(&LabelValue::Number(7.0)));
        assert_eq!(a.timestamp_ms, Some(5));
        assert!(engine.item("b").unwrap().unwrap().hidden);
        assert_eq!(engine.stats().catalogue_items, 2);
    }
    std::fs::write(&file, "{\"id\":\"a\",\"categories\":[\"y\"]}\n").unwrap();
    assert!(import(&file, &data).status.success());
    let engine = open(&data);
    assert_eq!(engine.item("a").unwrap().unwrap().categories, ["y"]);
    assert_eq!(engine.stats().catalogue_items, 2);
}

#[test]
fn a_bad_items_file_is_refused_naming_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let categories: Vec<String> = (0..=recwal::ITEM_CATEGORIES_MAX).map(|at| format!("c{at}")).collect();
    for (name, text, names) in [
        ("unknown.csv", "id,colour\na,red\n", "unknown column \"colour\""),
        ("noid.csv", "categories\nx\n", "no `id` column"),
        ("time.csv", "id,timestamp\na,1\nb,01-Jan-1995\n", "line 3: timestamp"),
        ("hidden.csv", "id,hidden\na,yes\n", "line 2: hidden"),
        ("order.csv", "id,timestamp,expires\na,10,10\n", "line 2: invalid expires"),
        ("many.csv", &format!("id,categories\na,{}\n", categories.join("|")), "line 2: invalid categories"),
        ("long.csv", &format!("id,label.k\na,{}\n", "x".repeat(recwal::LABEL_TEXT_BYTES_MAX + 1)), "labels.k"),
        ("emptyid.csv", "id\nok\n\"\"\n", "line 3: invalid id"),
        ("ragged.csv", "id,categories\na,x,y\n", "items.csv"),
        ("bad.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\",\"colour\":1}\n", "line 2"),
        ("noid.jsonl", "{\"categories\":[\"x\"]}\n", "missing field `id`"),
        ("items.txt", "id\na\n", ".csv, .tsv, .jsonl"),
        ("empty.csv", "id\n", "no items"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let data = dir.path().join(format!("data-{name}"));
        let output = import(&file, &data);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} was accepted");
        let names = if name == "ragged.csv" { "ragged.csv" } else { names };
        assert!(stderr.contains(names), "{name}: {stderr:?} does not say {names:?}");
        // Nothing written: the data dir holds no catalogue entry.
        if data.exists() {
            let engine = open(&data);
            assert_eq!(engine.stats().catalogue_items, 0, "{name}");
            assert_eq!(engine.stats().lsn_applied, 0, "{name}");
        }
    }
}

#[test]
fn a_tsv_items_file_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.tsv");
    std::fs::write(&file, "id\tcategories\ttimestamp_ms\nx\tA|B\t42\n").unwrap();
    let data = dir.path().join("data");
    assert!(import(&file, &data).status.success());
    let item = open(&data).item("x").unwrap().unwrap();
    assert_eq!((item.categories, item.timestamp_ms), (vec!["A".to_string(), "B".to_string()], Some(42)));
}

#[test]
fn an_exported_catalogue_imports_back_to_the_same_items() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    std::fs::write(
        &file,
        "id,categories,timestamp,expires,hidden,label.price,label.brand\n\
         m1,Drama|Comedy,1995-01-01,,,12.5,acme\n\
         m2,Drama,788918400001,2100-01-01T00:00:00Z,false,,\"a, b\"\n\
         m3,,,,true,3,\n",
    )
    .unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    assert!(import(&file, &first).status.success());
    let exported = dir.path().join("catalogue.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["export", "--items", "--data-dir"])
        .arg(&first)
        .arg("--out")
        .arg(&exported)
        .env_remove("RECWAL_DATA_DIR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&exported).unwrap().lines().count(), 3);
    let output = import(&exported, &second);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (first, second) = (open(&first), open(&second));
    assert_eq!(first.items(None, 10).unwrap(), second.items(None, 10).unwrap());
}
