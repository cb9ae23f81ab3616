//! `recwal serve --help` states what the default log costs on disk: its
//! segment size and the bound the ring can grow to, taken from the engine's
//! defaults so the text cannot drift from them.

use std::process::Command;

#[test]
fn serve_help_states_the_default_segment_size_and_the_rings_disk_bound() {
    let out = Command::new(env!("CARGO_BIN_EXE_recwal")).args(["serve", "--help"]).output().expect("run recwal");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let wal = recwal::EngineConfig::default().wal;
    let segment = format!("{} MiB", wal.segment_bytes >> 20);
    let bound = format!("{} GiB", (wal.segment_bytes * u64::from(wal.segments_max)) >> 30);
    let segments_max = format!("{} segments", wal.segments_max);
    for wanted in [&segment, &bound, &segments_max] {
        assert!(help.contains(wanted.as_str()), "`recwal serve --help` does not say {wanted:?}:\n{help}");
    }
}
