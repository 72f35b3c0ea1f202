#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lyrebird_fuzz::jingle::element(data));
