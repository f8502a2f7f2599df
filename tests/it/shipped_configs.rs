//! The configuration examples the repository ships say what they are: every bcrypt hash in
//! `deploy/`, `docs/`, `src/` and the README names its password nearby (`the hash of "..."`), and
//! that password really is the one it was made from; a hash described as one that
//! `no password matches` is at least a well-formed bcrypt hash. And the demo tree that `tools/demo`
//! serves (and `tools/screenshot` photographs) holds every scenario but the secrets-test canary.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{CANARY, repo, scenario_names};

/// How many lines above a hash (and its own line) may name its password.
const NEAR: usize = 10;

/// The characters of bcrypt's base64.
fn is_bcrypt_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}

/// Every bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`, two-digit cost, 53 characters) in `text`,
/// with its line number (from 0).
fn hashes(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("$2").map(|p| p + i) {
            let b = &bytes[at..];
            let well_formed = b.len() >= 60
                && b"abxy".contains(&b[2])
                && b[3] == b'$'
                && b[4].is_ascii_digit()
                && b[5].is_ascii_digit()
                && b[6] == b'$'
                && b[7..60].iter().all(|&c| is_bcrypt_char(c))
                && b.get(60).is_none_or(|&c| !is_bcrypt_char(c));
            if well_formed {
                found.push((number, line[at..at + 60].to_owned()));
                i = at + 60;
            } else {
                i = at + 2;
            }
        }
    }
    found
}

/// What the text near a hash says it is: `Some(password)` for `the hash of "password"`, `None` for
/// a hash that no password matches; an error when it says neither.
fn documented(lines: &[&str], number: usize) -> Result<Option<String>, String> {
    for line in lines[number.saturating_sub(NEAR)..=number].iter().rev() {
        let lower = line.to_lowercase();
        if let Some(at) = lower.find("hash of \"") {
            let rest = &line[at + "hash of \"".len()..];
            if let Some(end) = rest.find('"') {
                return Ok(Some(rest[..end].to_owned()));
            }
        }
        if lower.contains("no password matches") {
            return Ok(None);
        }
    }
    Err(format!(
        "no `the hash of \"PASSWORD\"` (or `no password matches`) within {NEAR} lines above"
    ))
}

/// The text files under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if fs::read_to_string(&path).is_ok() {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_bcrypt_hash_is_the_hash_of_its_documented_password() {
    let mut paths = vec![repo().join("README.md")];
    for dir in ["deploy", "docs", "src"] {
        files(&repo().join(dir), &mut paths);
    }
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        let text = fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let shown = path.strip_prefix(repo()).unwrap().display().to_string();
        for (number, hash) in hashes(&text) {
            let at = format!("{shown}:{}", number + 1);
            match documented(&lines, number) {
                Err(e) => problems.push(format!("{at}: {hash}: {e}")),
                Ok(Some(password)) => {
                    if !matches!(bcrypt::verify(&password, &hash), Ok(true)) {
                        problems.push(format!("{at}: {hash} is not the hash of {password:?}"));
                    }
                    // Not a hash that anything matches.
                    if !matches!(bcrypt::verify(format!("{password}x"), &hash), Ok(false)) {
                        problems.push(format!("{at}: {hash} also matches {password:?} + \"x\""));
                    }
                    checked.push(format!("{at} = hash of {password:?}"));
                }
                Ok(None) => {
                    if hash.parse::<bcrypt::HashParts>().is_err() || !matches!(bcrypt::verify("", &hash), Ok(false)) {
                        problems.push(format!("{at}: {hash} is not a well-formed bcrypt hash"));
                    }
                    checked.push(format!("{at} = a decoy"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The examples that must be there: the basic-auth web config and the security guide's copy.
    for must in ["deploy/web-config/mtls-basic-auth.yml", "docs/security.md"] {
        assert!(
            checked.iter().any(|c| c.starts_with(must)),
            "no hash checked in {must}: {checked:#?}"
        );
    }
}

#[test]
fn the_hash_scanner_finds_hashes_and_their_passwords() {
    let text = "# the hash of \"pw\"\nusers:\n  a: $2y$10$p8IsuM30cun7A4c3VCvCDekDOloupFRrEhULzc1iAfcr7QyWRYsHK\n  \
                b: $2y$10$short\n  c: \"$2b$04$01234567890123456789012345678901234567890123456789012\"\n";
    let found = hashes(text);
    assert_eq!(
        found,
        vec![
            (
                2,
                "$2y$10$p8IsuM30cun7A4c3VCvCDekDOloupFRrEhULzc1iAfcr7QyWRYsHK".to_owned()
            ),
            (
                4,
                "$2b$04$01234567890123456789012345678901234567890123456789012".to_owned()
            ),
        ]
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(documented(&lines, 2), Ok(Some("pw".to_owned())));
    assert!(documented(&["x", "y"], 1).is_err());
    assert_eq!(documented(&["// A hash no password matches", "const D"], 1), Ok(None));
}

#[test]
fn the_demo_tree_holds_every_scenario_but_the_canary() {
    let dest = tempfile::tempdir().unwrap();
    let tree = dest.path().join("demo-tree");
    let listed = demo_tree(&[], &tree);
    let want: Vec<String> = scenario_names().into_iter().filter(|n| n != "canary").collect();
    assert_eq!(listed, want);
    // Beside the demo's own bucket (tools/demo), the scenarios whose backend is a made-up bucket
    // on AWS stay out: with the demo's AWS keys iacwatch would try to read it there.
    let without = demo_tree(&["--no-s3-backends"], &dest.path().join("without"));
    let s3_backed: Vec<&String> = want.iter().filter(|n| !without.contains(n)).collect();
    assert_eq!(s3_backed, ["remote-backend-invisible", "remote-backend-snapshot"]);
    let mut all = Vec::new();
    files(&tree, &mut all);
    for path in all {
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(CANARY), "{} holds the canary", path.display());
    }
}

/// `tools/demo-tree ARGS DEST`; the scenario folders it made, sorted.
fn demo_tree(args: &[&str], tree: &Path) -> Vec<String> {
    let out = std::process::Command::new(repo().join("tools/demo-tree"))
        .args(args)
        .arg(tree)
        .output()
        .expect("running tools/demo-tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut listed: Vec<String> = fs::read_dir(tree)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    listed
}
