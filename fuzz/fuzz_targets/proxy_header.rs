#![no_main]
//! `shoal::fuzz::proxy_header`: see src/fuzz.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzz::proxy_header(data));
