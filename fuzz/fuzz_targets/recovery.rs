//! See `recwal_wal::testing::fuzz_recovery` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    recwal_wal::testing::fuzz_recovery(data);
});
