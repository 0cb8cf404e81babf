#![no_main]
//! `shoal::fuzz::config`: see src/fuzz.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzz::config(data));
