//! The AWS settings a client is built from: the `AWS_*` variables of the standard environment, and
//! static keys of a shared-credentials profile. Taken as data, so that tests (and several roots
//! in one process) never change the process environment. Never shown: `Debug` lists names only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// `AWS_*` variables, by name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AwsEnvironment {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsEnvironment")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AwsEnvironment {
    /// The process's `AWS_*` variables; when they name no access key, the static keys of the
    /// shared credentials file's profile (`AWS_PROFILE`, else `default`) are added, as the AWS
    /// CLI would use them.
    pub fn from_process() -> AwsEnvironment {
        let mut env = AwsEnvironment::from_pairs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")));
        if env.get("AWS_ACCESS_KEY_ID").is_none()
            && let Some(text) = env.credentials_file().and_then(|p| std::fs::read_to_string(p).ok())
        {
            let profile = env.get("AWS_PROFILE").unwrap_or("default").to_owned();
            for (name, value) in profile_keys(&text, &profile) {
                env.vars.insert(name.to_owned(), value);
            }
        }
        env
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> AwsEnvironment {
        AwsEnvironment {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The region: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Option<&str> {
        self.get("AWS_REGION").or_else(|| self.get("AWS_DEFAULT_REGION"))
    }

    fn credentials_file(&self) -> Option<PathBuf> {
        if let Some(path) = self.get("AWS_SHARED_CREDENTIALS_FILE") {
            return Some(PathBuf::from(path));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws/credentials"))
    }
}

/// Which link of the AWS credential chain a client will use (for a reason that says why a bucket
/// cannot be read: "no credentials" is `InstanceMetadata` off EC2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (from the environment or a profile).
    StaticKeys,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (EKS): STS `AssumeRoleWithWebIdentity`.
    WebIdentity,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI` (ECS, EKS Pod Identity).
    Container,
    /// Nothing set: the EC2 instance metadata endpoint is asked.
    InstanceMetadata,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::StaticKeys => "static_keys",
            CredentialSource::WebIdentity => "web_identity",
            CredentialSource::Container => "container",
            CredentialSource::InstanceMetadata => "instance_metadata",
        }
    }
}

impl AwsEnvironment {
    /// The link of the chain `object_store` takes, in its order.
    pub fn credential_source(&self) -> CredentialSource {
        if self.get("AWS_ACCESS_KEY_ID").is_some() && self.get("AWS_SECRET_ACCESS_KEY").is_some() {
            CredentialSource::StaticKeys
        } else if self.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && self.get("AWS_ROLE_ARN").is_some() {
            CredentialSource::WebIdentity
        } else if self.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || self.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        {
            CredentialSource::Container
        } else {
            CredentialSource::InstanceMetadata
        }
    }
}

/// The static keys of `profile` in a shared credentials file (INI: `[name]`, then
/// `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`), as the variables they stand
/// for. Other settings of a profile (roles, SSO, processes) are not read.
pub fn profile_keys(text: &str, profile: &str) -> Vec<(&'static str, String)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| inside) else {
            continue;
        };
        let var = match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => "AWS_ACCESS_KEY_ID",
            "aws_secret_access_key" => "AWS_SECRET_ACCESS_KEY",
            "aws_session_token" => "AWS_SESSION_TOKEN",
            _ => continue,
        };
        found.push((var, value.trim().to_owned()));
    }
    // Only a complete key pair is a credential.
    let has = |name| found.iter().any(|(n, _)| *n == name);
    if has("AWS_ACCESS_KEY_ID") && has("AWS_SECRET_ACCESS_KEY") {
        found
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret-default

# a comment
[ci]
aws_access_key_id=AKIDCI
aws_secret_access_key=secret-ci
aws_session_token = token-ci
region = eu-west-1

[profile half]
aws_access_key_id = AKIDHALF
";

    #[test]
    fn reads_the_static_keys_of_a_profile() {
        let keys = profile_keys(FILE, "ci");
        assert_eq!(
            keys,
            [
                ("AWS_ACCESS_KEY_ID", "AKIDCI".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "secret-ci".to_owned()),
                ("AWS_SESSION_TOKEN", "token-ci".to_owned()),
            ]
        );
        assert_eq!(profile_keys(FILE, "default").len(), 2);
        assert!(profile_keys(FILE, "half").is_empty(), "a key id alone is no credential");
        assert!(profile_keys(FILE, "missing").is_empty());
    }

    #[test]
    fn tells_the_link_of_the_chain() {
        let cases: &[(&[(&str, &str)], CredentialSource)] = &[
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")],
                CredentialSource::StaticKeys,
            ),
            (&[("AWS_ACCESS_KEY_ID", "a")], CredentialSource::InstanceMetadata),
            (
                &[
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                    ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ],
                CredentialSource::WebIdentity,
            ),
            (
                &[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")],
                CredentialSource::Container,
            ),
            (&[], CredentialSource::InstanceMetadata),
        ];
        for (vars, expected) in cases {
            let env = AwsEnvironment::from_pairs(vars.iter().copied());
            assert_eq!(env.credential_source(), *expected, "{vars:?}");
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let env = AwsEnvironment::from_pairs([("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"), ("AWS_REGION", "eu-west-1")]);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("s3cr3t-value"),
            "{shown}"
        );
        assert_eq!(env.region(), Some("eu-west-1"));
        let fallback = AwsEnvironment::from_pairs([("AWS_DEFAULT_REGION", "us-west-2"), ("AWS_REGION", "")]);
        assert_eq!(fallback.region(), Some("us-west-2"));
    }
}
