//! Where the router serves, the way Prometheus says it: a telemetry path (`--web.telemetry-path`),
//! a route prefix that every endpoint is served under (`--web.route-prefix`), and the external URL
//! the users reach the server by (`--web.external-url`), from which the page builds its links.
//!
//! Behind a reverse proxy that keeps the prefix (`/iacwatch/...` passed on as is), the route prefix
//! is that prefix. Behind one that strips it, the route prefix stays `/` and the external URL names
//! the prefix, so that the page's links still carry it.

/// How the router is told where to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOptions {
    /// The path of the exposition, below the route prefix. Default `/metrics`.
    pub telemetry_path: String,
    /// The path every endpoint is served under. Default `/` (the empty string means the same).
    pub route_prefix: String,
    /// The address users reach the server by (`https://ops.example.com/iacwatch/`); its path is the
    /// base of the page's links. None: the route prefix is.
    pub external_url: Option<String>,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            telemetry_path: "/metrics".to_owned(),
            route_prefix: "/".to_owned(),
            external_url: None,
        }
    }
}

/// A reason the options cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("{key}: '{value}' must be a URL path such as /metrics (no space, brace, '?', '#' or '//')")]
    NotAPath { key: &'static str, value: String },
    #[error("telemetry_path: '{0}' is taken by another endpoint (/, /healthz, /readyz, /api/...)")]
    Taken(String),
    #[error("external_url: '{0}' must be an http:// or https:// address, or a path starting with '/'")]
    NotAUrl(String),
}

/// The endpoints' paths, resolved from the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Paths {
    /// The route prefix without its trailing slash: `` for `/`, `/iacwatch`.
    pub prefix: String,
    /// The exposition's route, the prefix included.
    pub telemetry: String,
    /// The base of the page's links, ending in `/`: `/`, `/iacwatch/`.
    pub base: String,
    /// The exposition's link, relative to `base` (no leading `/`).
    pub telemetry_link: String,
}

impl Default for Paths {
    fn default() -> Self {
        // The defaults are valid by construction.
        Paths::resolve(&RouterOptions::default()).unwrap_or_else(|_| Paths {
            prefix: String::new(),
            telemetry: "/metrics".to_owned(),
            base: "/".to_owned(),
            telemetry_link: "metrics".to_owned(),
        })
    }
}

/// A path the router can take as a literal route: the characters RFC 3986 allows in a path
/// (`%` escapes included), without the braces the router reads as a parameter.
fn path_ok(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_'
                        | b'.'
                        | b'~'
                        | b'/'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                )
        })
}

/// `/`, `` and `/x/` to ``, `` and `/x`.
fn trimmed(path: &str) -> &str {
    path.trim_end_matches('/')
}

impl RouterOptions {
    /// Checks the options; the command line calls this, so that `router` never meets bad ones.
    pub fn check(&self) -> Result<(), OptionsError> {
        Paths::resolve(self).map(|_| ())
    }
}

impl Paths {
    pub fn resolve(options: &RouterOptions) -> Result<Paths, OptionsError> {
        let prefix = match options.route_prefix.as_str() {
            "" | "/" => String::new(),
            p if path_ok(p) => trimmed(p).to_owned(),
            p => {
                return Err(OptionsError::NotAPath {
                    key: "route_prefix",
                    value: p.to_owned(),
                });
            }
        };
        let telemetry_path = options.telemetry_path.as_str();
        if !path_ok(telemetry_path) || trimmed(telemetry_path).is_empty() {
            return Err(OptionsError::NotAPath {
                key: "telemetry_path",
                value: telemetry_path.to_owned(),
            });
        }
        let telemetry_path = trimmed(telemetry_path);
        if ["/healthz", "/readyz"].contains(&telemetry_path)
            || telemetry_path == "/api"
            || telemetry_path.starts_with("/api/")
        {
            return Err(OptionsError::Taken(telemetry_path.to_owned()));
        }
        let base = match &options.external_url {
            Some(url) => format!("{}/", trimmed(external_path(url)?)),
            None => format!("{prefix}/"),
        };
        Ok(Paths {
            telemetry: format!("{prefix}{telemetry_path}"),
            telemetry_link: telemetry_path.trim_start_matches('/').to_owned(),
            prefix,
            base,
        })
    }
}

/// The path of an external URL (`https://host:port/path` or `/path`).
fn external_path(url: &str) -> Result<&str, OptionsError> {
    let bad = || OptionsError::NotAUrl(url.to_owned());
    let path = if url.starts_with('/') {
        url
    } else {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(bad)?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad());
        }
        rest.find('/').map_or("/", |at| &rest[at..])
    };
    // Neither a query nor a fragment belongs to a base.
    let path = path.split(['?', '#']).next().unwrap_or("/");
    if path_ok(path) { Ok(path) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(telemetry: &str, prefix: &str, external: Option<&str>) -> Result<Paths, OptionsError> {
        Paths::resolve(&RouterOptions {
            telemetry_path: telemetry.into(),
            route_prefix: prefix.into(),
            external_url: external.map(str::to_owned),
        })
    }

    #[test]
    fn the_defaults_serve_at_the_top() {
        let p = Paths::default();
        assert_eq!(
            (p.prefix.as_str(), p.telemetry.as_str(), p.base.as_str()),
            ("", "/metrics", "/")
        );
        assert_eq!(paths("/metrics", "", None), Ok(p));
    }

    #[test]
    fn a_prefix_moves_every_route_and_link() {
        let p = paths("/metrics", "/iacwatch/", None).unwrap();
        assert_eq!(p.prefix, "/iacwatch");
        assert_eq!(p.telemetry, "/iacwatch/metrics");
        assert_eq!(p.base, "/iacwatch/");
        assert_eq!(p.telemetry_link, "metrics");
    }

    #[test]
    fn the_external_url_gives_the_links_and_not_the_routes() {
        let p = paths("/m", "/", Some("https://ops.example.com:8443/tools/iacwatch?x=1")).unwrap();
        assert_eq!((p.prefix.as_str(), p.telemetry.as_str()), ("", "/m"));
        assert_eq!(p.base, "/tools/iacwatch/");
        assert_eq!(paths("/m", "/", Some("http://host")).unwrap().base, "/");
        assert_eq!(paths("/m", "/", Some("/a/")).unwrap().base, "/a/");
        assert_eq!(
            paths("/m", "/team:a/iac%20watch", None).unwrap().base,
            "/team:a/iac%20watch/"
        );
    }

    #[test]
    fn bad_options_are_errors_that_name_the_key() {
        for (telemetry, prefix, external) in [
            ("metrics", "/", None),
            ("/", "/", None),
            ("/me{x}", "/", None),
            ("/metrics", "/a//b", None),
            ("/metrics", "x", None),
            ("/metrics", "/", Some("ftp://host/x")),
            ("/metrics", "/", Some("https://")),
            ("/metrics", "/", Some("https://host/<script>")),
            ("/metrics", "/a b", None),
            ("/metrics", "/{id}", None),
        ] {
            assert!(
                paths(telemetry, prefix, external).is_err(),
                "{telemetry} {prefix} {external:?}"
            );
        }
        assert_eq!(
            paths("/api/v1/summary", "/", None),
            Err(OptionsError::Taken("/api/v1/summary".into()))
        );
        let message = paths("/metrics", "x", None).unwrap_err().to_string();
        assert!(message.starts_with("route_prefix: 'x'"), "{message}");
    }
}
