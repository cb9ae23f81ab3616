//! `recwal eval` on rating files as people have them: string ids, implicit
//! feedback (no rating column), other rating scales, quoted CSV, headers or
//! none, `::`-separated MovieLens 1M, and the protocols beyond hash 80/20.
//! Errors name the file once and its 1-based line.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::{refused, succeeds};

fn recwal(args: &[&str]) -> Output {
    support::run_cli(args, Duration::from_secs(120))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The `(P, R, NDCG, HR)` of a strategy's row in the table.
fn metrics(table: &str, strategy: &str) -> [f64; 4] {
    let row = table
        .lines()
        .find(|line| line.starts_with(&format!("| {strategy} |")))
        .unwrap_or_else(|| panic!("no row {strategy}: {table}"));
    let cells: Vec<f64> = row.split('|').skip(2).take(4).map(|cell| cell.trim().parse().unwrap()).collect();
    [cells[0], cells[1], cells[2], cells[3]]
}

/// 30 users in two taste groups over 40 items, `per_user` interactions each,
/// written by `line(user, item, rating, seconds)`; ids as `u_<n>`/`i_<n>`.
fn community(per_user: usize, line: impl Fn(&str, &str, u32, u64) -> String) -> String {
    let mut text = String::new();
    for user in 0..30u32 {
        let group = user % 2;
        for step in 0..per_user as u32 {
            let item = group * 20 + (user * 3 + step * 7) % 20;
            let rating = 1 + (user + step) % 5;
            let seconds = 1_000_000 + u64::from(user) * 100 + u64::from(step);
            text.push_str(&line(&format!("u_{user}"), &format!("i_{item}"), rating, seconds));
        }
    }
    text
}

#[test]
fn string_ids_are_evaluated_with_the_hash_split_on_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("user,item,rating,timestamp\n{}", community(10, |u, i, r, t| format!("{u},{i},{},{t}\n", r.max(4))));
    let file = write(dir.path(), "ratings.csv", &text);
    let out = succeeds(&recwal(&["eval", p(&file)]));
    assert!(out.contains("hash 80/20: 240 train, 60 test"), "{out}");
    let [precision, _, ndcg, hit] = metrics(&out, "user_cf");
    assert!(precision > 0.0 && ndcg > 0.0 && hit > 0.0, "{out}");
    // The same split and figures every run.
    assert_eq!(metrics(&succeeds(&recwal(&["eval", p(&file)])), "user_cf"), metrics(&out, "user_cf"));
    // Only the strategies asked for, with the same figures.
    let some = succeeds(&recwal(&["eval", p(&file), "--strategies", "ease,user_cf"]));
    assert_eq!(metrics(&some, "user_cf"), metrics(&out, "user_cf"));
    assert!(some.contains("| ease |") && !some.contains("| item_rank |"), "{some}");
    let err = refused(&recwal(&["eval", p(&file), "--strategies", "user_cf,knn"]));
    assert!(err.contains("unknown strategy \"knn\"") && err.contains("ease"), "{err}");
    // A cut-off of 0 would print metrics of nothing; over 1000 no answer holds.
    for k in ["0", "1001"] {
        let err = refused(&recwal(&["eval", p(&file), "--k", k]));
        assert!(err.contains("--k") && err.contains("1..=1000"), "{k}: {err}");
    }
}

#[test]
fn implicit_files_count_any_interaction_as_relevant() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "clicks.csv", &community(10, |u, i, _, _| format!("{u},{i}\n")));
    let out = succeeds(&recwal(&["eval", p(&file)]));
    assert!(out.contains("relevant: any interaction"), "{out}");
    let [precision, _, ndcg, _] = metrics(&out, "user_cf");
    assert!(precision > 0.0 && ndcg > 0.0, "{out}");
    // A tab-separated one with a header and a timestamp, by its extension.
    let file = write(
        dir.path(),
        "clicks.tsv",
        &format!("user_id\titem_id\ttimestamp\n{}", community(10, |u, i, _, t| format!("{u}\t{i}\t{t}\n"))),
    );
    let out = succeeds(&recwal(&["eval", p(&file), "--protocol", "leave-last-out"]));
    assert!(out.contains("leave-last-out: 270 train, 30 test"), "{out}");
    assert!(metrics(&out, "user_cf")[3] > 0.0, "{out}");
}

#[test]
fn no_relevant_test_interaction_is_an_error_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "low.csv", &community(10, |u, i, r, _| format!("{u},{i},{}\n", 1 + r % 3)));
    let err = refused(&recwal(&["eval", p(&file)]));
    assert!(err.contains("no test interaction is relevant") && err.contains("rating ≥ 4"), "{err}");
    assert!(err.contains("--relevant-min"), "{err}");
    let out = succeeds(&recwal(&["eval", p(&file), "--relevant-min", "3"]));
    assert!(out.contains("relevant: rating ≥ 3"), "{out}");
    assert!(metrics(&out, "user_cf")[0] > 0.0, "{out}");
}

#[test]
fn the_rating_scale_is_configurable_and_checked_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tens.csv",
        &format!("user,item,rating\n{}", community(10, |u, i, r, _| format!("{u},{i},{}\n", r * 2))),
    );
    let err = refused(&recwal(&["eval", p(&file)]));
    // The first rating above 5, on the file's line (the header is line 1).
    let ratings = community(10, |_, _, r, _| format!("{}\n", r * 2));
    let first_high = 2 + ratings.lines().position(|l| l != "2" && l != "4").unwrap();
    assert!(err.contains(&format!("tens.csv line {first_high}: field `rating`")), "{err}");
    assert!(err.contains("--rating-scale"), "{err}");
    let out = succeeds(&recwal(&["eval", p(&file), "--rating-scale", "1..10"]));
    // The default threshold on another scale: three quarters of the way up.
    assert!(out.contains("relevant: rating ≥ 7.75"), "{out}");
    assert!(metrics(&out, "user_cf")[0] > 0.0, "{out}");
    let err = refused(&recwal(&["eval", p(&file), "--rating-scale", "1..8"]));
    assert!(err.contains("line ") && err.contains("outside the rating scale 1..8"), "{err}");
    let err = refused(&recwal(&["eval", p(&file), "--rating-scale", "5..1"]));
    assert!(err.contains("--rating-scale"), "{err}");
}

#[test]
fn quoted_csv_as_pandas_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    // pandas' to_csv(quoting=csv.QUOTE_NONNUMERIC) with an index column dropped.
    let text = format!(
        "\"user\",\"item\",\"rating\"\n{}",
        community(10, |u, i, r, _| format!("\"{u}, jr\",\"{i} \"\"x\"\"\",{}\n", r.max(4)))
    );
    let file = write(dir.path(), "pandas.csv", &text);
    let out = succeeds(&recwal(&["eval", p(&file)]));
    assert!(out.contains("300 ratings"), "{out}");
    assert!(metrics(&out, "user_cf")[0] > 0.0, "{out}");
}

#[test]
fn header_rows_are_detected_or_declared() {
    let dir = tempfile::tempdir().unwrap();
    let body = community(10, |u, i, r, _| format!("{u},{i},{}\n", r.max(4)));
    // Unknown column names over a numeric column: a header.
    let file = write(dir.path(), "scores.csv", &format!("uid,iid,score\n{body}"));
    assert!(succeeds(&recwal(&["eval", p(&file)])).contains("300 ratings"));
    // Said to have none: its first line is a row with a bad rating.
    let err = refused(&recwal(&["eval", p(&file), "--no-header"]));
    assert!(err.contains("scores.csv line 1: field `rating`"), "{err}");
    // Said to have one: the first row is taken as the header.
    let file = write(dir.path(), "plain.csv", &body);
    let out = succeeds(&recwal(&["eval", p(&file), "--header"]));
    assert!(out.contains("299 ratings"), "{out}");
}

#[test]
fn errors_name_the_file_once_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ratings.tsv", "user\titem\trating\n\t7\t4\n");
    let err = refused(&recwal(&["eval", p(&file)]));
    assert_eq!(err.matches("ratings.tsv").count(), 1, "{err}");
    assert!(err.contains("ratings.tsv line 2: field `user`: empty id"), "{err}");
    assert!(!err.contains("row ") && !err.contains("batch"), "{err}");
    // The third line of a quoted file, after a record that spans two lines.
    // (A line end in a quoted rating is space around it; in an id it is a
    // control character, refused.)
    let file = write(dir.path(), "multi.csv", "user,item,rating\nab,i,\"4\n\"\nu,i,x\n");
    let err = refused(&recwal(&["eval", p(&file)]));
    assert!(err.contains("multi.csv line 4: field `rating`"), "{err}");
}

#[test]
fn formats_are_chosen_by_flag_or_extension_and_refusals_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let body = community(10, |u, i, r, t| format!("{u}::{i}::{}::{t}\n", r.max(4)));
    let file = write(dir.path(), "ratings.dat", &body);
    let out = succeeds(&recwal(&["eval", p(&file), "--format", "ml1m"]));
    assert!(out.contains("300 ratings"), "{out}");
    let err = refused(&recwal(&["eval", p(&file), "--format", "parquet"]));
    for name in ["ml100k", "ml1m", "inter", "csv", "tsv", "jsonl"] {
        assert!(err.contains(name), "{err}");
    }
    // JSON lines, as `recwal export` writes them, by extension.
    let body = community(10, |u, i, r, t| {
        format!(
            "{{\"user\":\"{u}\",\"item\":\"{i}\",\"kind\":\"rating\",\"value\":{},\"timestamp_ms\":{t}000}}\n",
            r.max(4)
        )
    });
    let file = write(dir.path(), "events.jsonl", &body);
    let out = succeeds(&recwal(&["eval", p(&file), "--protocol", "leave-last-out"]));
    assert!(out.contains("300 ratings") && out.contains("leave-last-out: 270 train, 30 test"), "{out}");
    // A three-column file given as ml100k (four columns) says what exists.
    let file = write(dir.path(), "three.data", "1\t2\t4\n");
    let err = refused(&recwal(&["eval", p(&file)]));
    assert!(err.contains("three.data line 1") && err.contains("--format"), "{err}");
}

#[test]
fn temporal_and_leave_last_out_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let body = community(10, |u, i, r, t| format!("{u},{i},{},{t}\n", r.max(4)));
    let file = write(dir.path(), "timed.csv", &body);
    let out = succeeds(&recwal(&["eval", p(&file), "--protocol", "temporal", "--test-fraction", "0.2"]));
    assert!(out.contains("temporal (test fraction 0.2): 240 train, 60 test"), "{out}");
    let out = succeeds(&recwal(&["eval", p(&file), "--protocol", "leave-last-out"]));
    assert!(out.contains("leave-last-out: 270 train, 30 test"), "{out}");
    // Without timestamps the time-ordered protocols are refused.
    let file = write(dir.path(), "untimed.csv", &community(10, |u, i, r, _| format!("{u},{i},{r}\n")));
    let err = refused(&recwal(&["eval", p(&file), "--protocol", "leave-last-out"]));
    assert!(err.contains("timestamp"), "{err}");
}

#[test]
fn help_says_what_is_read() {
    let help = succeeds(&recwal(&["eval", "--help"]));
    for needle in [
        "--format",
        "ml100k",
        "ml1m",
        "--delimiter",
        "--header",
        "--no-header",
        "--rating-scale",
        "--relevant-min",
        "--protocol",
        "leave-last-out",
        "string",
        "implicit",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

/// `--columns` reads a layout neither positions nor a header give: here
/// implicit feedback as `session;user;item;timestamp;device`.
#[test]
fn columns_name_a_layout_the_file_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    let mut text = String::new();
    for user in 0..40 {
        for item in 0..12 {
            if (user + item) % 3 != 0 {
                text.push_str(&format!("s{user};u{user};i{};{};d1\n", (user * 7 + item) % 30, 1_000 + item));
            }
        }
    }
    std::fs::write(&file, text).unwrap();
    let args = ["eval", p(&file), "--delimiter", ";", "--strategies", "popularity"];
    let refused_without = refused(&recwal(&args));
    assert!(refused_without.contains("--columns"), "{refused_without}");
    let out = succeeds(&recwal(&[&args[..], &["--columns", "-,user,item,timestamp,-"]].concat()));
    assert!(out.contains("implicit: no rating column") && out.contains("| popularity |"), "{out}");
    let bad = refused(&recwal(&[&args[..], &["--columns", "-,user,thing,timestamp,-"]].concat()));
    assert!(bad.contains("unknown column \"thing\""), "{bad}");
}

#[test]
fn figures_that_would_mean_nothing_are_refused_or_marked() {
    let dir = tempfile::tempdir().unwrap();
    // One rating per user: hashed 80/20 holds every one out, nothing trains.
    let lone: String = (0..20).map(|user| format!("u{user},i{user},5\n")).collect();
    let file = write(dir.path(), "lone.csv", &lone);
    let err = refused(&recwal(&["eval", p(&file)]));
    assert!(err.contains("nothing is left to train on"), "{err}");

    // Every user rated every item: no (held-out, unrated) pair, DOA n/a.
    let full = "u1,i1,5,1\nu1,i2,4,2\nu2,i1,5,1\nu2,i2,4,2\n";
    let file = write(dir.path(), "full.csv", full);
    let out = succeeds(&recwal(&["eval", p(&file), "--protocol", "leave-last-out", "--strategies", "popularity"]));
    let row = out.lines().find(|line| line.starts_with("| popularity |")).unwrap();
    assert!(row.contains("| n/a |"), "{out}");

    // More items than EASE trains on (item_model.items_max, 10,000): its
    // row says why instead of printing the figures of all-zero scores.
    // (Three raters an item: whatever the split holds out, training keeps
    // far more than 10,000 of the 12,000 items.)
    let mut many = String::new();
    for item in 0..12_000u32 {
        for rater in [0, 7, 13] {
            many.push_str(&format!("u{},i{item},{}\n", (item + rater) % 200, 3 + rater % 3));
        }
    }
    let file = write(dir.path(), "many.csv", &many);
    let out = succeeds(&recwal(&["eval", p(&file), "--strategies", "ease,popularity"]));
    let row = out.lines().find(|line| line.starts_with("| ease |")).unwrap();
    assert!(row.contains("not trained:") && row.contains("items_max"), "{out}");
    assert!(metrics(&out, "popularity")[0] >= 0.0, "{out}");
}
