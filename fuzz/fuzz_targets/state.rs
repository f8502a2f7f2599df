//! The state parser, from bytes and from a reader (the streaming path large files take).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let whole = iacwatch::artifact::state::parse(data);
    let streamed = iacwatch::artifact::state::parse_reader(data);
    // Both paths agree on whether the input is a state.
    assert_eq!(whole.is_ok(), streamed.is_ok());
});
