//! See `recwal::fuzzing` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    recwal::fuzzing::fuzz_snapshot(data);
});
