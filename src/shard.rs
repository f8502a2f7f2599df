//! `--shard I/N`: which workspaces an instance takes, by a hash of their identity that every
//! instance and every version computes alike.

use std::fmt;

use crate::workspace::Workspace;

/// Shard `index` of `count`, 0-based like Prometheus's `hashmod` (`0/2` and `1/2` split in two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// Why a `--shard` value cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("'{0}' is not I/N (for example 0/2)")]
    Form(String),
    #[error("'{0}': N must be at least 1")]
    NoShards(String),
    #[error("'{0}': I counts from 0 and must be less than N")]
    OutOfRange(String),
}

impl Shard {
    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let form = || ShardError::Form(text.to_owned());
        let (index, count) = text.trim().split_once('/').ok_or_else(form)?;
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(form());
            }
            part.parse::<u64>().map_err(|_| form())
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 {
            return Err(ShardError::NoShards(text.to_owned()));
        }
        if index >= count {
            return Err(ShardError::OutOfRange(text.to_owned()));
        }
        Ok(Shard { index, count })
    }

    /// The shard of a workspace id (`workspace::workspace_id`: the first 8 bytes of SHA-256 over
    /// `root NUL path NUL workspace NUL`, as 16 hex digits): that number, big-endian, modulo N.
    /// An id that is not 16 hex digits (never made by `workspace_id`) falls in shard 0.
    pub fn of_id(id: &str, count: u64) -> u64 {
        match u64::from_str_radix(id, 16) {
            Ok(number) if id.len() == 16 && count > 0 => number % count,
            _ => 0,
        }
    }

    /// True when this instance takes the workspace.
    pub fn takes(&self, workspace: &Workspace) -> bool {
        self.takes_identity(&workspace.root, &workspace.path, &workspace.name)
    }

    /// True when this instance takes the workspace `(root, path, workspace)`.
    pub fn takes_identity(&self, root: &str, path: &str, workspace: &str) -> bool {
        let id = crate::workspace::workspace_id(root, path, workspace);
        Shard::of_id(&id, self.count) == self.index
    }

    /// Keeps only the workspaces of this shard.
    pub fn retain(shard: Option<Shard>, workspaces: &mut Vec<Workspace>) {
        if let Some(shard) = shard {
            workspaces.retain(|w| shard.takes(w));
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::workspace_id;

    #[test]
    fn parses_zero_based_i_of_n() {
        assert_eq!(Shard::parse("0/2"), Ok(Shard { index: 0, count: 2 }));
        assert_eq!(Shard::parse(" 1/2 "), Ok(Shard { index: 1, count: 2 }));
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard::parse("2/2"), Err(ShardError::OutOfRange("2/2".into())));
        assert_eq!(Shard::parse("0/0"), Err(ShardError::NoShards("0/0".into())));
        for bad in [
            "",
            "1",
            "1/",
            "/2",
            "-1/2",
            "+1/2",
            "a/2",
            "1/2/3",
            "1.0/2",
            "99999999999999999999/2",
        ] {
            assert_eq!(Shard::parse(bad), Err(ShardError::Form(bad.into())), "{bad}");
        }
        assert_eq!(Shard::parse("3/4").map(|s| s.to_string()), Ok("3/4".into()));
    }

    #[test]
    fn the_hash_is_the_ids_number_modulo_n_and_stays_put() {
        // Written down in docs/remote-state.md: these values never change between versions.
        let id = workspace_id("s3://bucket", "env/prod/network", "default");
        let number = u64::from_str_radix(&id, 16).unwrap();
        for count in [1, 2, 3, 7, 16] {
            assert_eq!(Shard::of_id(&id, count), number % count);
        }
        // Pinned: a change of the hash would move workspaces between running instances.
        assert_eq!(workspace_id("root", ".", "default"), "e32beebbe57fb484");
        assert_eq!(Shard::of_id("e32beebbe57fb484", 2), 0);
        assert_eq!(Shard::of_id("e32beebbe57fb484", 3), 1);
        assert_eq!(Shard::of_id("ffffffffffffffff", 2), 1);
        assert_eq!(Shard::of_id("0000000000000003", 3), 0);
        assert_eq!(Shard::of_id("0000000000000004", 3), 1);
        assert_eq!(Shard::of_id("not hex", 3), 0);
    }

    #[test]
    fn every_workspace_is_in_exactly_one_shard_and_the_split_is_even_enough() {
        let count = 4;
        let mut sizes = [0u32; 4];
        for n in 0..4000 {
            let id = workspace_id("root", &format!("stacks/{n}"), "default");
            let shard = Shard::of_id(&id, count);
            let takers = (0..count).filter(|i| Shard::of_id(&id, count) == *i).count();
            assert_eq!(takers, 1);
            sizes[usize::try_from(shard).unwrap()] += 1;
        }
        // 1000 expected each; a stable, uniform hash stays well within a quarter of it.
        assert!(sizes.iter().all(|s| (750..1250).contains(s)), "{sizes:?}");
    }
}
