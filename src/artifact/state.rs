//! State files: format 4 (Terraform >= 0.12, OpenTofu), format 3 (Terraform 0.7-0.11), and the
//! OpenTofu encrypted envelope.
//!
//! Only metadata is read: version, serial, lineage, terraform_version, the count of managed
//! resource instances and of tainted ones. Attributes, outputs and everything else are skipped.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde::de::IgnoredAny;

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

/// Parses a state held in memory.
pub fn parse(bytes: &[u8]) -> Result<StateMeta, ParseError> {
    from_slice::<RawState>(bytes).and_then(RawState::into_meta)
}

/// Parses a state from a reader in constant memory.
pub fn parse_reader<R: Read>(reader: R) -> Result<StateMeta, ParseError> {
    from_reader::<RawState, R>(reader).and_then(RawState::into_meta)
}

impl RawState {
    fn into_meta(self) -> Result<StateMeta, ParseError> {
        let mut meta = StateMeta {
            version: self.version,
            serial: self.serial,
            lineage: self.lineage.as_deref().and_then(|l| identifier(l, 64)),
            terraform_version: self.terraform_version.as_deref().and_then(|v| identifier(v, 64)),
            resources: Some(0),
            tainted: 0,
            encrypted: false,
        };
        if self.encrypted_data.is_some() {
            meta.encrypted = true;
            meta.resources = None;
            return Ok(meta);
        }
        match self.version {
            Some(4) => {
                for resource in self.resources.unwrap_or_default() {
                    if resource.mode.as_deref() != Some("managed") {
                        continue;
                    }
                    for instance in resource.instances.iter().filter(|i| i.deposed.is_none()) {
                        meta.resources = Some(meta.resources.unwrap_or(0) + 1);
                        if instance.status.as_deref() == Some("tainted") {
                            meta.tainted += 1;
                        }
                    }
                }
                Ok(meta)
            }
            Some(3) => {
                let mut count = 0;
                for module in self.modules.unwrap_or_default() {
                    for (key, resource) in module.resources.unwrap_or_default() {
                        if key.starts_with("data.") {
                            continue;
                        }
                        let primary_tainted = resource.primary.as_ref().and_then(|p| p.tainted) == Some(true);
                        let listed_tainted = resource.tainted.as_ref().map_or(0, Vec::len) as u64;
                        if resource.primary.is_some() {
                            count += 1;
                        }
                        meta.tainted += u64::from(primary_tainted) + listed_tainted;
                    }
                }
                meta.resources = Some(count);
                Ok(meta)
            }
            Some(version) => Err(ParseError::UnsupportedVersion { version }),
            None => Err(ParseError::NotThisArtifact {
                expected: "a Terraform state",
            }),
        }
    }
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
