//! Basic auth against bcrypt hashes, with a small cache of good credentials so that a scrape every
//! few seconds does not pay a bcrypt round each time.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

/// A hash no password matches, checked for unknown users so that they take as long as known ones.
const DECOY: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Good credentials remembered at most (then the cache starts over).
const CACHE_LIMIT: usize = 1024;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    good: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users,
            good: Mutex::new(HashSet::new()),
        }
    }

    /// Whether an `Authorization` header value holds a known user and the right password.
    /// Runs bcrypt: call it off the async threads.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(decode) else {
            return false;
        };
        let hash = self.users.get(&user);
        let key: [u8; 32] = {
            let mut digest = Sha256::new();
            for part in [
                user.as_bytes(),
                password.as_bytes(),
                hash.map_or(&b""[..], |h| h.as_bytes()),
            ] {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part);
            }
            digest.finalize().into()
        };
        if hash.is_some() && self.good.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return true;
        }
        let verified = bcrypt::verify(&password, hash.map_or(DECOY, |h| h.as_str())).unwrap_or(false);
        let ok = verified && hash.is_some();
        if ok {
            let mut good = self.good.lock().unwrap_or_else(|e| e.into_inner());
            if good.len() >= CACHE_LIMIT {
                good.clear();
            }
            good.insert(key);
        }
        ok
    }
}

/// `Basic base64(user:password)` to its two parts.
fn decode(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn right_and_wrong_credentials() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prometheus".to_owned(), hash)]));
        assert!(auth.check(Some(&header("prometheus", "s3cret"))));
        // Twice: the second answer comes from the cache.
        assert!(auth.check(Some(&header("prometheus", "s3cret"))));
        assert!(!auth.check(Some(&header("prometheus", "wrong"))));
        assert!(!auth.check(Some(&header("nobody", "s3cret"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(Some("Basic !!!")));
        assert!(!auth.check(None));
    }

    #[test]
    fn the_decoy_is_a_bcrypt_hash() {
        assert!(DECOY.parse::<bcrypt::HashParts>().is_ok());
    }
}
