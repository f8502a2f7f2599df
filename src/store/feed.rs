//! The writer's loop: every source, on its own thread, holds a [`Feed`] (a `Sink`) and sends its
//! batches over one channel; one loop owns the [`Writer`] and applies them in the order they
//! come. A send returns once its batch is published, so what a source asks of `known()` right
//! after includes it. The store is ready when every source has said it is.

use std::sync::Arc;
use std::sync::mpsc;

use super::{Applied, Reader, Writer};
use crate::shard::Shard;
use crate::workspace::{Known, Sink, Update};

/// What a source tells the writer's loop.
#[derive(Debug)]
enum Message {
    Update(Update),
    RootUp(String, bool),
    Ready,
}

/// A message and the way to say it was applied.
type Call = (Message, mpsc::SyncSender<()>);

/// A source's end of the channel to the writer's loop.
#[derive(Debug)]
pub struct Feed {
    calls: mpsc::Sender<Call>,
    reader: Reader,
    shard: Option<Shard>,
}

/// The loop's end: owns the writer.
#[derive(Debug)]
pub struct Loop {
    writer: Writer,
    calls: mpsc::Receiver<Call>,
    /// Kept to make feeds from until the loop runs.
    feeds: mpsc::Sender<Call>,
    sources: usize,
    shard: Option<Shard>,
}

impl Loop {
    /// The loop of this writer, with no source yet.
    pub fn new(writer: Writer) -> Loop {
        let (feeds, calls) = mpsc::channel();
        Loop {
            writer,
            calls,
            feeds,
            sources: 0,
            shard: None,
        }
    }

    /// Every feed made from now on passes on only the workspaces of `shard` (`--shard I/N`): the
    /// store, its counts and metrics hold that shard alone. What the history knew from before a
    /// restart of the workspaces outside the shard is left alone: they never were this instance's,
    /// so they do not vanish when it finds none of them (call after `Writer::resume`).
    pub fn with_shard(mut self, shard: Option<Shard>) -> Loop {
        self.shard = shard;
        if let Some(shard) = shard {
            self.writer
                .retain_previous(|(root, path, name)| shard.takes_identity(root, path, name));
        }
        self
    }

    /// A new source's feed. Feeds are not `Clone`: each is made here, so that the store is ready
    /// exactly when every source has said so.
    pub fn feed(&mut self) -> Feed {
        self.sources += 1;
        Feed {
            calls: self.feeds.clone(),
            reader: self.writer.reader(),
            shard: self.shard,
        }
    }

    /// A reader of the store this loop writes.
    pub fn reader(&self) -> Reader {
        self.writer.reader()
    }
}

/// What the loop hands to its caller after each batch: what changed, and whether "found" is news
/// (not on a full scan before the store is ready: the first scan finds everything).
pub struct Batch<'a> {
    pub applied: &'a Applied,
    pub found_is_news: bool,
}

impl Loop {
    /// Applies what the feeds send until every feed is gone; `after` sees each batch's changes
    /// (for logs, counters and the history) before its sender goes on.
    pub fn run(self, mut after: impl FnMut(Batch<'_>)) {
        let Loop {
            mut writer,
            calls,
            feeds,
            sources,
            ..
        } = self;
        // Only the feeds keep the channel open now.
        drop(feeds);
        let mut ready = 0;
        while let Ok((message, done)) = calls.recv() {
            match message {
                Message::Update(update) => {
                    let found_is_news = !update.full || writer.snapshot().ready;
                    let applied = writer.apply(update);
                    after(Batch {
                        applied: &applied,
                        found_is_news,
                    });
                }
                Message::RootUp(root, up) => writer.set_root_up(&root, up),
                Message::Ready => {
                    ready += 1;
                    if ready == sources {
                        // What was known before a restart and no source found has vanished.
                        let applied = writer.unseen(chrono::Utc::now());
                        if !applied.transitions.is_empty() {
                            after(Batch {
                                applied: &applied,
                                found_is_news: true,
                            });
                        }
                    }
                    if ready >= sources {
                        writer.set_ready();
                    }
                }
            }
            // The sender may have stopped waiting (it is shutting down): nothing to do then.
            let _ = done.send(());
        }
    }
}

impl Feed {
    fn call(&mut self, message: Message) {
        let (done, applied) = mpsc::sync_channel(1);
        if self.calls.send((message, done)).is_ok() {
            // An error here means the loop is gone: the daemon is stopping.
            let _ = applied.recv();
        }
    }
}

impl Sink for Feed {
    fn send(&mut self, mut update: Update) {
        Shard::retain(self.shard, &mut update.workspaces);
        self.call(Message::Update(update));
    }

    fn root_up(&mut self, root: &str, up: bool) {
        self.call(Message::RootUp(root.to_owned(), up));
    }

    fn ready(&mut self) {
        self.call(Message::Ready);
    }

    fn known(&self) -> Arc<dyn Known> {
        self.reader.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::workspace::Scope;

    fn empty(root: &str, full: bool) -> Update {
        Update {
            full,
            ..Update::cleared(root, Utc::now())
        }
    }

    #[test]
    fn two_sources_reach_one_writer_and_ready_waits_for_both() {
        let mut writer_loop = Loop::new(Writer::new());
        let reader = writer_loop.reader();
        let mut local = writer_loop.feed();
        let mut remote = writer_loop.feed();
        let batches = std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                let mut batches = Vec::new();
                writer_loop.run(|batch| batches.push(batch.found_is_news));
                batches
            });
            local.root_up("local", true);
            local.send(empty("local", true));
            // A send returns once its batch is published.
            assert!(local.known().workspaces().next().is_none());
            assert!(reader.snapshot().last_full_scan.is_some());
            local.ready();
            assert!(!reader.is_ready(), "one source of two is ready");
            remote.root_up("s3://bucket", false);
            remote.ready();
            assert!(reader.is_ready());
            remote.send(Update {
                scope: Scope::Dirs(Default::default()),
                ..empty("s3://bucket", false)
            });
            local.send(empty("local", true));
            drop((local, remote));
            writer.join().unwrap()
        });
        // The full scan before ready: what it finds is no news; after ready, and any other
        // batch, it is.
        assert_eq!(batches, [false, true, true]);
        let roots = reader.snapshot().roots.clone();
        assert_eq!(roots.get("local"), Some(&true));
        assert_eq!(roots.get("s3://bucket"), Some(&false));
    }

    #[test]
    fn a_restart_with_a_shard_vanishes_only_workspaces_of_that_shard() {
        use crate::model::Status;
        let shard = Shard { index: 0, count: 2 };
        let keys: Vec<(String, String, String)> = (0..16)
            .map(|n| {
                (
                    "s3://bucket".to_owned(),
                    format!("stacks/{n}/terraform.tfstate"),
                    "default".to_owned(),
                )
            })
            .collect();
        let mut mine: Vec<_> = keys
            .iter()
            .filter(|(r, p, w)| shard.takes_identity(r, p, w))
            .cloned()
            .collect();
        mine.sort();
        assert!(!mine.is_empty() && mine.len() < keys.len(), "{mine:?}");
        let mut writer = Writer::new();
        // What an earlier, unsharded run recorded: every workspace of the bucket.
        writer.resume(keys.iter().map(|k| (k.clone(), (Status::Active, Utc::now()))).collect());
        let mut writer_loop = Loop::new(writer).with_shard(Some(shard));
        let mut remote = writer_loop.feed();
        let vanished = std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                let mut vanished = Vec::new();
                writer_loop.run(|batch| {
                    let gone = batch.applied.transitions.iter().filter(|t| t.to.is_none());
                    vanished.extend(gone.map(|t| t.key.clone()));
                });
                vanished
            });
            // The bucket is empty now: what was this shard's has vanished, nothing else.
            remote.send(empty("s3://bucket", true));
            remote.ready();
            drop(remote);
            writer.join().unwrap()
        });
        let mut vanished = vanished;
        vanished.sort();
        assert_eq!(vanished, mine);
    }
}
