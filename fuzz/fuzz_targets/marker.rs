//! The pipeline marker parsers (`lock.json`, `last-run.json`) and the backend file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = iacwatch::artifact::marker::parse_lock(data);
    let _ = iacwatch::artifact::marker::parse_last_run(data);
    let _ = iacwatch::artifact::backend::parse(data);
});
