//! Terraform's `.terraform.tfstate.lock.info` parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = iacwatch::artifact::tflock::parse(data);
});
