//! What `package` and `create` read ahead of their archive writer.
//!
//! The archive is written in order, one entry at a time, and over a long round trip a blob
//! fetched only when the writer reaches it costs a round trip of idle link each. So the writer
//! keeps the blobs after its current one under way:
//! * small blobs (under [`SMALL`]: round trips more than bytes) are fetched whole into memory,
//!   up to [`SMALL_IN_FLIGHT`] of them and [`SMALL_BYTES`] together;
//! * the next [`OPEN_AHEAD`] larger blobs have their download opened: their `GET` is answered
//!   while the writer is busy before them, and until it reads them they hold no more than their
//!   connections' buffers.
//!
//! The writer tops the window up itself, in entry order, before each entry it writes: what it
//! waits for is always the first entry under way, so nothing read ahead can hold up the entry
//! it needs (a shared budget taken by whichever task asks first could). Measured with the
//! core-shaped `package` from a source behind the bench's 100 ms WAN proxy: 16 small blobs and
//! no larger one ahead, 53.6 s; with four larger ones opened ahead, 43.0 s; with 64 small ones
//! too, 33.8 s at 48 MB peak RSS (32 small ones: 36.0 s, 43 MB); docs/bench.md, "Far sources".

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::digest::Digest;
use crate::output::progress::Progress;
use crate::registry::{BlobStream, RegistryError};
use crate::transfer::source::{Check, Origin};

/// Blobs smaller than this are fetched ahead whole, into memory.
pub const SMALL: u64 = 1 << 20;
/// The most small blobs fetched ahead at once.
const SMALL_IN_FLIGHT: usize = 64;
/// The most bytes (by the blobs' sizes) the small blobs fetched ahead hold together.
const SMALL_BYTES: u64 = 8 << 20;
/// How many of the larger blobs ahead of the writer have their download opened.
const OPEN_AHEAD: usize = 4;

/// One entry's read ahead, as the writer takes it.
pub enum Taken {
    /// A small blob's whole body (its last item is the error that ended it, if any).
    Whole(Vec<io::Result<Bytes>>),
    /// A larger blob's download, opened ([`Origin::prepare`]: `None` for a package entry).
    Opened(Option<BlobStream>),
}

enum Pending {
    Whole(JoinHandle<Vec<io::Result<Bytes>>>, u64),
    Opened(JoinHandle<Result<Option<BlobStream>, RegistryError>>),
}

/// The entries under way after the writer's current one.
pub struct Ahead<'a> {
    handle: Handle,
    progress: Progress,
    blobs: &'a [(Digest, u64, Origin)],
    /// The first entry not under way yet.
    next: usize,
    pending: VecDeque<(usize, Pending)>,
    small: usize,
    small_bytes: u64,
    opened: usize,
}

impl<'a> Ahead<'a> {
    /// The read-ahead over `blobs`, its first entries set under way.
    pub fn new(handle: Handle, progress: Progress, blobs: &'a [(Digest, u64, Origin)]) -> Self {
        let mut ahead = Self {
            handle,
            progress,
            blobs,
            next: 0,
            pending: VecDeque::new(),
            small: 0,
            small_bytes: 0,
            opened: 0,
        };
        ahead.top_up();
        ahead
    }

    /// Entry `i`'s read ahead; the window is topped up again once it is taken. The writer takes
    /// the entries in order; from a blocking thread (this waits on the runtime).
    pub fn take(&mut self, i: usize) -> Result<Taken, RegistryError> {
        let pending = match self.pending.front() {
            Some((j, _)) if *j == i => self.pending.pop_front().map(|(_, p)| p),
            _ => None,
        };
        let taken =
            match pending {
                Some(Pending::Whole(task, size)) => {
                    self.small -= 1;
                    self.small_bytes -= size;
                    Taken::Whole(self.handle.block_on(task).unwrap_or_else(|e| {
                        vec![Err(io::Error::other(format!("download task: {e}")))]
                    }))
                }
                Some(Pending::Opened(task)) => {
                    self.opened -= 1;
                    let task = self.handle.block_on(task);
                    Taken::Opened(task.map_err(|e| RegistryError::Other {
                        registry: match &self.blobs[i].2 {
                            Origin::Registry { client, .. } => client.host().into(),
                            Origin::Package { .. } => String::new(),
                        },
                        message: format!("download task: {e}"),
                    })??)
                }
                // Not under way (taken out of order): opened now.
                None => {
                    let (digest, _, origin) = &self.blobs[i];
                    Taken::Opened(self.handle.block_on(origin.prepare(digest))?)
                }
            };
        self.top_up();
        Ok(taken)
    }

    /// Sets the entries after the last one under way going, in order, while they fit.
    fn top_up(&mut self) {
        while let Some((digest, size, origin)) = self.blobs.get(self.next) {
            let pending = if *size < SMALL {
                if self.small >= SMALL_IN_FLIGHT || self.small_bytes + size > SMALL_BYTES {
                    break;
                }
                self.small += 1;
                self.small_bytes += size;
                let task =
                    fetch_whole(digest.clone(), *size, origin.clone(), self.progress.clone());
                Pending::Whole(self.handle.spawn(task), *size)
            } else {
                if self.opened >= OPEN_AHEAD {
                    break;
                }
                self.opened += 1;
                // On a blocking thread, as the downloads' own resumption (`pull::download`):
                // the client's retrying future is not provably `Send` for a spawn.
                let (h, digest, origin) = (self.handle.clone(), digest.clone(), origin.clone());
                Pending::Opened(
                    self.handle
                        .spawn_blocking(move || h.block_on(origin.prepare(&digest))),
                )
            };
            self.pending.push_back((self.next, pending));
            self.next += 1;
        }
    }

    /// Ends the read-ahead after a failed entry: nothing new starts, and what is under way is
    /// waited for (none may outlive the runtime).
    pub fn stop(mut self) {
        self.next = self.blobs.len();
        for (_, pending) in self.pending.drain(..) {
            match pending {
                Pending::Whole(task, _) => {
                    let _ = self.handle.block_on(task);
                }
                Pending::Opened(task) => {
                    let _ = self.handle.block_on(task);
                }
            }
        }
    }
}

/// One small blob's body, read whole (its last item is the error that ended it, if any; a
/// registry's refusal of the `GET` arrives as that error, wrapping the [`RegistryError`]).
async fn fetch_whole(
    digest: Digest,
    size: u64,
    origin: Origin,
    progress: Progress,
) -> Vec<io::Result<Bytes>> {
    match origin.open(&digest, size, progress, None, Check::Digest) {
        Ok(body) => body.collect().await,
        Err(e) => vec![Err(e)],
    }
}
