//! Differential: the scanning state and plan parsers against their serde_json reference. Both
//! must give the same answer on every input, error kind and position included, and whenever the
//! scanner takes a document alone its answer must be the reference's. Everything runs on the
//! fuzzer's thread: threads spawned under it were reported as leaks by LeakSanitizer.
#![no_main]

use iacwatch::artifact::{plan, state};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let reference = state::parse_with_serde_json(data);
    assert_eq!(state::parse_on(data, 1), reference, "state parsers disagree");
    let scanned = state::parse_scanned(data);
    if let Some(scanned) = &scanned {
        assert_eq!(scanned, &reference, "state scanner disagrees");
    }
    // Walked in pieces (one after another): the one walk's answer, giving up included.
    assert_eq!(state::parse_scanned_in_pieces(data, 16, 1), scanned, "state scanner in pieces disagrees");
    let reference = plan::parse_with_serde_json(data);
    assert_eq!(plan::parse(data), reference, "plan parsers disagree");
    if let Some(scanned) = plan::parse_scanned(data) {
        assert_eq!(scanned, reference, "plan scanner disagrees");
    }
});
