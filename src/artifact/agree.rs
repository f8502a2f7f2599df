//! Differential tests: the scanning state and plan parsers against their serde_json reference,
//! over every fixture and generated documents (escapes, unicode, deep nesting, huge strings,
//! numbers of every form), each also truncated and with bytes changed. The fuzz target `agree`
//! does the same on inputs libFuzzer makes.

use std::path::Path;

use super::{plan, state};

/// Both parsers give the same answer, error kind and position included; when the scanner takes
/// the document alone, its answer is the reference's too.
fn agree(bytes: &[u8]) {
    let reference = state::parse_with_serde_json(bytes);
    assert_eq!(state::parse(bytes), reference, "state: {}", shown(bytes));
    let scanned = state::parse_scanned(bytes);
    if let Some(scanned) = &scanned {
        assert_eq!(scanned, &reference, "state (scanner alone): {}", shown(bytes));
    }
    assert_eq!(
        state::parse_on(bytes, 1),
        reference,
        "state (one thread): {}",
        shown(bytes)
    );
    // Walked in pieces small enough to split this document, on two threads and on one.
    for piece in [1, 7, 64] {
        for threads in [1, 2] {
            let pieces = state::parse_scanned_in_pieces(bytes, piece, threads);
            assert_eq!(
                pieces,
                scanned,
                "state (pieces of {piece}, {threads} threads): {}",
                shown(bytes)
            );
        }
    }
    let reference = plan::parse_with_serde_json(bytes);
    assert_eq!(plan::parse(bytes), reference, "plan: {}", shown(bytes));
    if let Some(scanned) = plan::parse_scanned(bytes) {
        assert_eq!(scanned, reference, "plan (scanner alone): {}", shown(bytes));
    }
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(400).collect()
}

/// The document, every prefix of it (a sample when it is long), and copies with one byte
/// replaced, removed or doubled at sampled places.
fn agree_with_damage(doc: &[u8]) {
    agree(doc);
    // At most about 120 prefixes and 30 places of change, whatever the size of the document.
    let step = (doc.len() / 120).max(1);
    for end in (0..doc.len()).step_by(step) {
        agree(&doc[..end]);
    }
    const REPLACEMENTS: &[u8] = b"\"\\{}[],:0-.eE nt\x01\x7f\xff\xc3";
    let step = (doc.len() / 30).max(1);
    for at in (0..doc.len()).step_by(step) {
        let mut changed = doc.to_vec();
        for &byte in REPLACEMENTS {
            changed[at] = byte;
            agree(&changed);
        }
        let mut removed = doc.to_vec();
        removed.remove(at);
        agree(&removed);
        let mut doubled = doc.to_vec();
        doubled.insert(at, doc[at]);
        agree(&doubled);
    }
}

/// Values that exercise the skipper, as JSON text.
fn tricky_values() -> Vec<String> {
    let mut values: Vec<String> = [
        r#""plain""#,
        r#""with \"quotes\" and \\ and \/ \b\f\n\r\t""#,
        r#""\u00e9\u20AC\ud83d\ude00 lone \ud800 \udfff""#,
        "\"Jürgen Groß — 東京 😀\"",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":"*"}]}"#,
        r#""{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\"}]}""#,
        "0",
        "-0",
        "-12.5e-3",
        "1E+9",
        "18446744073709551616",
        "1.7976931348623157e309",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "[[],[{}],{\"a\":[null,[true,{\"b\":-1}]]}]",
        "{ \"spaced\" :\t[ 1 ,\r\n 2 ] }",
    ]
    .iter()
    .map(|v| (*v).to_owned())
    .collect();
    values.push(format!("\"{}\"", "A".repeat(100_000)));
    values.push(format!("\"{}\"", "ab\\n\\\"cd".repeat(5_000)));
    values.push(format!("\"{}\"", "é".repeat(20_000)));
    values.push(format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)));
    values.push(format!("{}1{}", "{\"a\":[".repeat(2_000), "]}".repeat(2_000)));
    values
}

/// A v4 state holding `value` as an attribute, and the fields the parser reads in `fields`.
fn state_with(value: &str, fields: &str, indent: bool) -> String {
    let doc = format!(
        r#"{{"version":4,{fields}"serial":3,"lineage":"ab-12","terraform_version":"1.5.7",
"resources":[{{"mode":"managed","type":"t","name":"a","instances":[
{{"status":"tainted","attributes":{{"v":{value},"list":[{value}]}},"private":{value}}},
{{"deposed":"00000001","attributes":{{}}}},{{"schema_version":0,"attributes":{value}}}]}},
{{"mode":"data","instances":[{{"attributes":{value}}}]}}],"outputs":{{"o":{{"value":{value}}}}}}}"#
    );
    if indent {
        match serde_json::from_str::<serde_json::Value>(&doc) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or(doc),
            Err(_) => doc,
        }
    } else {
        doc
    }
}

fn plan_with(value: &str) -> String {
    format!(
        r#"{{"format_version":"1.2","terraform_version":"1.9.8","planned_values":{value},
"resource_changes":[{{"address":"a","change":{{"actions":["create"],"before":null,"after":{value}}}}},
{{"change":{{"actions":["delete","create"],"after_unknown":{value}}}}},{{"change":null}},{{}},
{{"change":{{"actions":["no-op","read","update"]}}}}],
"resource_drift":[{{"change":{{"actions":["update"],"before":{value}}}}}],
"output_changes":{{"x":{{"actions":["create"],"after":{value}}},"x":{{"actions":["no-op"]}},"y":{{"actions":["update"]}}}},
"prior_state":{value},"errored":false}}"#
    )
}

/// Variants of the read fields that the scanner must either get right or hand over.
const FIELD_VARIANTS: &[&str] = &[
    "",
    r#""version":4,"#,
    r#""serial":null,"#,
    r#""lineage":"esc\u0061ped","#,
    r#""encrypted_data":null,"#,
    r#""encrypted_data":{"x":1},"#,
    r#""modules":null,"#,
    r#""vers\u0069on":3,"#,
    r#""resources":null,"#,
    "\"\u{e9}\":1,",
];

#[test]
fn scanner_and_serde_json_agree_on_every_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/artifacts");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    assert!(files.len() > 40, "fixtures missing under {}", root.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        agree_with_damage(&bytes);
        // A valid state or plan from Terraform is taken by the scanner itself: the fast path is
        // the one used.
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if state::parse_with_serde_json(&bytes).is_ok() {
            assert!(state::parse_scanned(&bytes).is_some(), "{name}: handed over");
        }
        if plan::parse_with_serde_json(&bytes).is_ok() {
            assert!(plan::parse_scanned(&bytes).is_some(), "{name}: handed over");
        }
    }
}

#[test]
fn scanner_and_serde_json_agree_on_generated_states_and_plans() {
    for value in tricky_values() {
        for fields in FIELD_VARIANTS {
            for indent in [false, true] {
                agree(state_with(&value, fields, indent).as_bytes());
            }
        }
        agree(plan_with(&value).as_bytes());
    }
    // Damage on documents of a size that keeps the test quick.
    for value in tricky_values().iter().filter(|v| v.len() < 200) {
        agree_with_damage(state_with(value, "", true).as_bytes());
        agree_with_damage(plan_with(value).as_bytes());
    }
    // Invalid UTF-8 inside a skipped string is accepted by both; in a kept string, both refuse.
    let skipped = state_with("\"\u{1}\"", "", false).replace('\u{1}', "\u{7f}");
    let mut bytes = skipped.into_bytes();
    let at = bytes.iter().position(|b| *b == 0x7f).unwrap();
    bytes[at] = 0xff;
    assert!(state::parse(&bytes).is_ok());
    agree(&bytes);
    agree(b"{\"version\":4,\"lineage\":\"\xff\",\"resources\":[]}");
    assert_eq!(
        state::parse(b"{\"version\":4,\"lineage\":\"\xff\"}")
            .unwrap_err()
            .kind(),
        "not_json"
    );
}

#[test]
fn the_scanner_takes_ordinary_documents_itself() {
    for value in tricky_values() {
        assert!(
            state::parse_scanned(state_with(&value, "", true).as_bytes()).is_some(),
            "{value:.80}"
        );
    }
    let meta = state::parse_scanned(state_with("1", "", true).as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!((meta.resources, meta.tainted), (Some(2), 1));
}
