//! See `recwal_wal::testing::fuzz_ops` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    recwal_wal::testing::fuzz_ops(data);
});
