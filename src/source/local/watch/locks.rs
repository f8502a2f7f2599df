//! Lock re-checks: some changes make no file event (a killed apply releases its OS lock and
//! writes nothing; a lock ages past the stale limit), so held locks and every verdict that may
//! change with time alone are looked at again every few seconds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::super::layout;
use super::Watch;
use crate::classify::classify;
use crate::model::ReasonCode;
use crate::workspace::{Scope, Sink, Update, Workspace};

impl Watch {
    /// Re-checks who holds each lock, and every verdict that may change with time alone; reads a
    /// directory again only when its state was caught mid-write.
    pub(super) fn recheck_locks(&self, sink: &mut dyn Sink) {
        let known = sink.known();
        let now = Utc::now();
        let mut reread: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let mut changed: BTreeMap<(usize, String), Vec<Workspace>> = BTreeMap::new();
        for ws in known.workspaces() {
            let locked = ws.evidence.terraform_lock.is_some() || ws.evidence.pipeline_lock.is_some();
            let due = ws.verdict.recheck_at.is_some_and(|at| at <= now);
            if !locked && !due {
                continue;
            }
            let Some(index) = self.roots.iter().position(|r| r.label == ws.root) else {
                continue;
            };
            if due && ws.verdict.reasons.iter().any(|r| r.code == ReasonCode::StateSettling) {
                reread.entry(index).or_default().insert(ws.path.clone());
                continue;
            }
            let mut evidence = ws.evidence.clone();
            let root = &self.roots[index].path;
            if let Some(lock) = &mut evidence.terraform_lock {
                let state_file = root.join(&lock.path).with_file_name(layout::STATE);
                lock.content.holder = self.scanner.probe.os_lock(&state_file);
            }
            if let Some(lock) = &mut evidence.pipeline_lock
                && let Ok(content) = &lock.content.content
            {
                lock.content.holder = self.scanner.probe.process(content.host.as_deref(), content.pid);
            }
            let verdict = classify(&evidence, now, &self.scanner.policy);
            if verdict != ws.verdict {
                let mut updated = ws.clone();
                updated.evidence = evidence;
                updated.verdict = verdict;
                changed.entry((index, ws.path.clone())).or_default().push(updated);
            }
        }
        // A directory's workspaces are replaced together; keep the unchanged ones.
        let mut by_root: BTreeMap<usize, (BTreeSet<String>, Vec<Workspace>)> = BTreeMap::new();
        for ((index, path), updated) in changed {
            let group = by_root.entry(index).or_default();
            for ws in known
                .workspaces()
                .filter(|w| w.root == self.roots[index].label && w.path == path)
            {
                let ws = updated
                    .iter()
                    .find(|u| u.name == ws.name)
                    .cloned()
                    .unwrap_or_else(|| ws.clone());
                group.1.push(ws);
            }
            group.0.insert(path);
        }
        for (index, (dirs, workspaces)) in by_root {
            sink.send(Update {
                root: self.roots[index].label.clone(),
                scope: Scope::Dirs(dirs),
                workspaces,
                problems: Vec::new(),
                full: false,
                at: now,
            });
        }
        for (index, dirs) in reread {
            self.reread(sink, &self.roots[index], dirs);
        }
    }
}
