#![no_main]
//! `shoal::fuzz::request_target`: see src/fuzz.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzz::request_target(data));
