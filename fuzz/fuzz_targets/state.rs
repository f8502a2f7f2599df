//! The state parser, from bytes and from a reader (the streaming path large files take).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // On this thread only: threads spawned under the fuzzer were reported as leaks.
    let whole = iacwatch::artifact::state::parse_on(data, 1);
    let streamed = iacwatch::artifact::state::parse_reader(data);
    // Both paths agree on whether the input is a state.
    assert_eq!(whole.is_ok(), streamed.is_ok());
});
