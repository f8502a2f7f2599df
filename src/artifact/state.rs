//! State files: format 4 (Terraform >= 0.12, OpenTofu), format 3 (Terraform 0.7-0.11), and the
//! OpenTofu encrypted envelope.
//!
//! Only metadata is read: version, serial, lineage, terraform_version, the count of managed
//! resource instances and of tainted ones. Attributes, outputs and everything else are skipped.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::scan::{Bail, Scan, Scanner, first_sight};
use super::split;
use super::{ParseError, from_reader, from_slice, identifier};

/// What a state file says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMeta {
    /// The state format version (3 or 4); `None` for an encrypted state.
    pub version: Option<u64>,
    pub serial: Option<u64>,
    pub lineage: Option<String>,
    pub terraform_version: Option<String>,
    /// Managed resource instances; `None` when the state is encrypted and cannot be counted.
    pub resources: Option<u64>,
    /// Instances whose status is `tainted`.
    pub tainted: u64,
    pub encrypted: bool,
}

impl StateMeta {
    /// True when the state holds managed resources, or may (encrypted).
    pub fn has_resources(&self) -> bool {
        self.encrypted || self.resources.unwrap_or(0) > 0
    }
}

#[derive(Deserialize)]
struct RawState {
    version: Option<u64>,
    serial: Option<u64>,
    lineage: Option<String>,
    terraform_version: Option<String>,
    /// Format 4.
    resources: Option<Vec<RawResourceV4>>,
    /// Format 3.
    modules: Option<Vec<RawModuleV3>>,
    /// OpenTofu's encrypted envelope.
    encrypted_data: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawResourceV4 {
    mode: Option<String>,
    #[serde(default)]
    instances: Vec<RawInstanceV4>,
}

#[derive(Deserialize)]
struct RawInstanceV4 {
    status: Option<String>,
    /// A deposed object (left over from a create-before-destroy replacement) is not counted as a
    /// resource instance of its own.
    deposed: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawModuleV3 {
    #[serde(default)]
    resources: Option<BTreeMap<String, RawResourceV3>>,
}

#[derive(Deserialize)]
struct RawResourceV3 {
    primary: Option<RawPrimaryV3>,
    /// Terraform 0.7 kept tainted instances in a list of their own.
    #[serde(default)]
    tainted: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawPrimaryV3 {
    #[serde(default)]
    tainted: Option<bool>,
}

/// Parses a state held in memory: the byte scanner when it takes the document whole, else
/// serde_json (see [`super::scan`]); both give the same answer. A huge state is walked on as many
/// threads as the rayon pool it is called in has ([`parse_on`]).
pub fn parse(bytes: &[u8]) -> Result<StateMeta, ParseError> {
    parse_on(bytes, rayon::current_num_threads())
}

/// [`parse`] on at most `threads` threads (this one included): a state of 8 MiB or more has its
/// `resources` walked in pieces on them; with 1, no thread is spawned.
pub fn parse_on(bytes: &[u8], threads: usize) -> Result<StateMeta, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    match scan(bytes, Split::on(threads)) {
        Ok(facts) => facts.into_meta(),
        Err(Bail) => parse_with_serde_json(bytes),
    }
}

/// The scanner alone, on this thread: `None` when it hands the document to serde_json. For the
/// differential tests, which hold it to [`parse_with_serde_json`].
pub fn parse_scanned(bytes: &[u8]) -> Option<Result<StateMeta, ParseError>> {
    scan(bytes, Split::on(1)).ok().map(Facts::into_meta)
}

/// The scanner with `resources` walked in pieces of about `chunk` bytes on `threads` threads
/// (on this one alone with 1, piece after piece): for the differential tests, which hold it to
/// [`parse_scanned`] with pieces small enough to split any document.
pub fn parse_scanned_in_pieces(bytes: &[u8], chunk: usize, threads: usize) -> Option<Result<StateMeta, ParseError>> {
    scan(bytes, Split { chunk, threads }).ok().map(Facts::into_meta)
}

/// States are split into pieces of this size to be walked on several threads (so only states of
/// twice this size or more are split): a piece costs a few milliseconds.
const PIECE: usize = 4 << 20;

/// How a state's `resources` array is walked: in pieces of about `chunk` bytes, on `threads`.
#[derive(Clone, Copy)]
struct Split {
    chunk: usize,
    threads: usize,
}

impl Split {
    /// Pieces of [`PIECE`] on `threads` threads; no pieces on one, where they would only cost.
    fn on(threads: usize) -> Split {
        let chunk = if threads > 1 { PIECE } else { usize::MAX };
        Split { chunk, threads }
    }
}

/// The reference parser: serde_json with `IgnoredAny` for what is not read.
pub fn parse_with_serde_json(bytes: &[u8]) -> Result<StateMeta, ParseError> {
    from_slice::<RawState>(bytes).and_then(|raw| raw.facts().into_meta())
}

/// Parses a state from a reader in constant memory.
pub fn parse_reader<R: Read>(reader: R) -> Result<StateMeta, ParseError> {
    from_reader::<RawState, R>(reader).and_then(|raw| raw.facts().into_meta())
}

/// Instances counted in a state: managed ones, and tainted ones among them.
#[derive(Clone, Copy, Default)]
struct Counts {
    instances: u64,
    tainted: u64,
}

/// What either parser found, before it is judged.
struct Facts<'a> {
    version: Option<u64>,
    serial: Option<u64>,
    lineage: Option<&'a str>,
    terraform_version: Option<&'a str>,
    /// Format 4's `resources`, when present.
    v4: Counts,
    /// Format 3's `modules`, when present.
    v3: Counts,
    encrypted: bool,
}

impl RawState {
    fn facts(&self) -> Facts<'_> {
        let mut v4 = Counts::default();
        for resource in self.resources.iter().flatten() {
            if resource.mode.as_deref() != Some("managed") {
                continue;
            }
            for instance in resource.instances.iter().filter(|i| i.deposed.is_none()) {
                v4.instances += 1;
                v4.tainted += u64::from(instance.status.as_deref() == Some("tainted"));
            }
        }
        let mut v3 = Counts::default();
        for module in self.modules.iter().flatten() {
            for (key, resource) in module.resources.iter().flatten() {
                if key.starts_with("data.") {
                    continue;
                }
                let primary_tainted = resource.primary.as_ref().and_then(|p| p.tainted) == Some(true);
                let listed_tainted = resource.tainted.as_ref().map_or(0, Vec::len) as u64;
                v3.instances += u64::from(resource.primary.is_some());
                v3.tainted += u64::from(primary_tainted) + listed_tainted;
            }
        }
        Facts {
            version: self.version,
            serial: self.serial,
            lineage: self.lineage.as_deref(),
            terraform_version: self.terraform_version.as_deref(),
            v4,
            v3,
            encrypted: self.encrypted_data.is_some(),
        }
    }
}

impl Facts<'_> {
    fn into_meta(self) -> Result<StateMeta, ParseError> {
        let mut meta = StateMeta {
            version: self.version,
            serial: self.serial,
            lineage: self.lineage.and_then(|l| identifier(l, 64)),
            terraform_version: self.terraform_version.and_then(|v| identifier(v, 64)),
            resources: Some(0),
            tainted: 0,
            encrypted: false,
        };
        if self.encrypted {
            meta.encrypted = true;
            meta.resources = None;
            return Ok(meta);
        }
        let counts = match self.version {
            Some(4) => self.v4,
            Some(3) => self.v3,
            Some(version) => return Err(ParseError::UnsupportedVersion { version }),
            None => {
                return Err(ParseError::NotThisArtifact {
                    expected: "a Terraform state",
                });
            }
        };
        meta.resources = Some(counts.instances);
        meta.tainted = counts.tainted;
        Ok(meta)
    }
}

/// The scanner's walk of a state: the fields and shapes of `RawState`, nothing else kept. A long
/// `resources` array is walked in pieces as `split` says ([`super::split`]), with the same answer.
fn scan(bytes: &[u8], split: Split) -> Scan<Facts<'_>> {
    let mut s = Scanner::new(bytes);
    let mut facts = Facts {
        version: None,
        serial: None,
        lineage: None,
        terraform_version: None,
        v4: Counts::default(),
        v3: Counts::default(),
        encrypted: false,
    };
    let mut seen = 0;
    s.object(|s, key| match key {
        b"version" => {
            first_sight(&mut seen, 0)?;
            facts.version = s.opt_u64()?;
            Ok(())
        }
        b"serial" => {
            first_sight(&mut seen, 1)?;
            facts.serial = s.opt_u64()?;
            Ok(())
        }
        b"lineage" => {
            first_sight(&mut seen, 2)?;
            facts.lineage = s.opt_str()?;
            Ok(())
        }
        b"terraform_version" => {
            first_sight(&mut seen, 3)?;
            facts.terraform_version = s.opt_str()?;
            Ok(())
        }
        b"resources" => {
            first_sight(&mut seen, 4)?;
            if s.null()? {
                return Ok(());
            }
            facts.v4 = split::array(s, split.chunk, split.threads, scan_resource_v4, |total, more| {
                total.instances += more.instances;
                total.tainted += more.tainted;
            })?;
            Ok(())
        }
        b"modules" => {
            first_sight(&mut seen, 5)?;
            if s.null()? {
                return Ok(());
            }
            s.array(|s| scan_module_v3(s, &mut facts.v3))
        }
        b"encrypted_data" => {
            first_sight(&mut seen, 6)?;
            if !s.null()? {
                s.skip_value()?;
                facts.encrypted = true;
            }
            Ok(())
        }
        _ => s.skip_value(),
    })?;
    s.finish()?;
    Ok(facts)
}

fn scan_resource_v4(s: &mut Scanner<'_>, counts: &mut Counts) -> Scan<()> {
    let (mut managed, mut here, mut seen) = (false, Counts::default(), 0);
    s.object(|s, key| match key {
        b"mode" => {
            first_sight(&mut seen, 0)?;
            managed = s.opt_str()? == Some("managed");
            Ok(())
        }
        b"instances" => {
            first_sight(&mut seen, 1)?;
            s.array(|s| {
                let (mut tainted, mut deposed, mut seen) = (false, false, 0);
                s.object(|s, key| match key {
                    b"status" => {
                        first_sight(&mut seen, 0)?;
                        tainted = s.opt_str()? == Some("tainted");
                        Ok(())
                    }
                    b"deposed" => {
                        first_sight(&mut seen, 1)?;
                        deposed = !s.null()?;
                        if deposed { s.skip_value() } else { Ok(()) }
                    }
                    _ => s.skip_value(),
                })?;
                if !deposed {
                    here.instances += 1;
                    here.tainted += u64::from(tainted);
                }
                Ok(())
            })
        }
        _ => s.skip_value(),
    })?;
    if managed {
        counts.instances += here.instances;
        counts.tainted += here.tainted;
    }
    Ok(())
}

fn scan_module_v3(s: &mut Scanner<'_>, counts: &mut Counts) -> Scan<()> {
    let mut seen = 0;
    s.object(|s, key| match key {
        b"resources" => {
            first_sight(&mut seen, 0)?;
            if s.null()? {
                return Ok(());
            }
            // As serde fills a map: a key seen twice keeps its last value.
            let mut resources = BTreeMap::new();
            s.object(|s, key| {
                resources.insert(key, scan_resource_v3(s)?);
                Ok(())
            })?;
            for (key, (primary, tainted)) in resources {
                if !key.starts_with(b"data.") {
                    counts.instances += u64::from(primary);
                    counts.tainted += tainted;
                }
            }
            Ok(())
        }
        _ => s.skip_value(),
    })
}

/// A v3 resource: whether it has a primary instance, and its tainted instances.
fn scan_resource_v3(s: &mut Scanner<'_>) -> Scan<(bool, u64)> {
    let (mut primary, mut primary_tainted, mut listed, mut seen) = (false, false, 0, 0);
    s.object(|s, key| match key {
        b"primary" => {
            first_sight(&mut seen, 0)?;
            if s.null()? {
                return Ok(());
            }
            primary = true;
            let mut seen = 0;
            s.object(|s, key| match key {
                b"tainted" => {
                    first_sight(&mut seen, 0)?;
                    primary_tainted = !s.null()? && s.bool()?;
                    Ok(())
                }
                _ => s.skip_value(),
            })
        }
        b"tainted" => {
            first_sight(&mut seen, 1)?;
            if s.null()? {
                return Ok(());
            }
            s.array(|s| {
                listed += 1;
                s.skip_value()
            })
        }
        _ => s.skip_value(),
    })?;
    Ok((primary, u64::from(primary_tainted) + listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_managed_instances_and_tainted_ones() {
        let state = br#"{"version":4,"serial":7,"lineage":"abc-1","terraform_version":"1.5.0",
            "resources":[
              {"mode":"managed","type":"null_resource","name":"a","instances":[{"attributes":{"id":"1"}},{"status":"tainted","attributes":{}}]},
              {"mode":"data","type":"x","name":"d","instances":[{"attributes":{}}]},
              {"mode":"managed","type":"null_resource","name":"b","instances":[{"deposed":"00000001","attributes":{}}]}
            ],"outputs":{"secret":{"value":"hunter2"}}}"#;
        let meta = parse(state).unwrap();
        assert_eq!(meta.resources, Some(2));
        assert_eq!(meta.tainted, 1);
        assert_eq!(meta.serial, Some(7));
        assert_eq!(meta.lineage.as_deref(), Some("abc-1"));
        assert!(!meta.encrypted);
    }

    #[test]
    fn lineage_with_arbitrary_text_is_dropped() {
        let meta = parse(br#"{"version":4,"lineage":"has spaces and \"quotes\"","resources":[]}"#).unwrap();
        assert_eq!(meta.lineage, None);
    }

    #[test]
    fn reader_and_slice_agree() {
        let state = br#"{"version":4,"serial":1,"resources":[{"mode":"managed","instances":[{}]}]}"#;
        assert_eq!(parse(state).unwrap(), parse_reader(&state[..]).unwrap());
    }

    #[test]
    fn errors_never_quote_the_input() {
        let err = parse(br#"{"version":"CANARY-secret","resources":[]}"#).unwrap_err();
        assert_eq!(err.kind(), "wrong_shape");
        assert!(!err.to_string().contains("CANARY"));
    }

    #[test]
    fn deep_nesting_neither_crashes_nor_loses_the_count() {
        // Skipped values are walked without recursion, so depth costs nothing there.
        let depth = 100_000;
        let mut doc = String::from(r#"{"version":4,"resources":[{"mode":"managed","instances":[{"attributes":"#);
        doc.push_str(&"[".repeat(depth));
        doc.push_str(&"]".repeat(depth));
        doc.push_str("}]}]}");
        assert_eq!(parse(doc.as_bytes()).unwrap().resources, Some(1));
        assert_eq!(parse_reader(doc.as_bytes()).unwrap().resources, Some(1));
        // Where a value is read, the parser's recursion limit answers with an error.
        let unclosed = format!(r#"{{"version":4,"resources":{}"#, "[".repeat(depth));
        assert!(parse(unclosed.as_bytes()).is_err());
        let mut deep_typed = String::from(r#"{"version":4,"resources":[{"mode":"managed","instances":[{"status":"#);
        deep_typed.push_str(&"[".repeat(depth));
        assert!(matches!(
            parse(deep_typed.as_bytes()).unwrap_err().kind(),
            "wrong_shape" | "truncated" | "too_deep"
        ));
    }
}
