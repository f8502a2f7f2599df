//! The one rule for a link to a pipeline run, applied where the wrapper takes it from the CI
//! variables and again where the reader takes it from a `lock.json` someone else wrote.

/// Links longer than this are not links to a run; they are dropped rather than cut.
const MAX_LEN: usize = 512;

/// An http(s) link without credentials: no `user:password@`, no query parameter whose name says
/// it holds a secret. Anything else (another scheme, no host, control characters, longer than
/// 512 characters) is not a link to a run and is dropped.
pub fn safe_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || url.chars().any(char::is_control) {
        return None;
    }
    let (tail, fragment) = match tail.split_once('#') {
        Some((tail, fragment)) => (tail, Some(fragment)),
        None => (tail, None),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.is_empty() && !secret_name(pair.split('=').next().unwrap_or_default()))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    let safe = format!("{}://{host}{tail}{fragment}", scheme.to_ascii_lowercase());
    (safe.chars().count() <= MAX_LEN).then_some(safe)
}

fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "sig",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::safe_url;

    #[test]
    fn links_lose_credentials_and_anything_else_is_dropped() {
        assert_eq!(
            safe_url("https://ci:s3cret@ci.example/run/1").as_deref(),
            Some("https://ci.example/run/1")
        );
        assert_eq!(
            safe_url("HTTPS://ci.example/run?x=1&API_KEY=k").as_deref(),
            Some("https://ci.example/run?x=1")
        );
        assert_eq!(safe_url("https://ci.example/a\u{7}b"), None);
        assert_eq!(safe_url(&format!("https://ci.example/{}", "a".repeat(512))), None);
        assert!(safe_url(&format!("https://ci.example/{}", "a".repeat(400))).is_some());
    }
}
