//! The plan JSON parser, from bytes and from a reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let whole = iacwatch::artifact::plan::parse(data);
    let streamed = iacwatch::artifact::plan::parse_reader(data);
    assert_eq!(whole.is_ok(), streamed.is_ok());
});
