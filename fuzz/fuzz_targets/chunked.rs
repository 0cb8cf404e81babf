#![no_main]
//! `shoal::fuzz::chunked`: see src/fuzz.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzz::chunked(data));
