#![no_main]
//! `shoal::fuzz::response_head`: see src/fuzz.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzz::response_head(data));
