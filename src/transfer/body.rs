//! Blob bodies for uploads: read from a package on a blocking thread, counted (and hashed, where
//! no registry checks the bytes) on the way (a wrong size or digest ends the body with an error,
//! so no registry commits the blob), fanned out to several destinations behind bounded queues, or
//! fed from one sequential pass over a compressed package.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Condvar, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::digest::{Digest, Hasher};
use crate::output::progress::Progress;
use crate::package::{self, BlobLocation};
use crate::registry::BlobStream;

/// Read size for blob bodies: large enough to keep syscalls cheap, small enough that `jobs`
/// uploads with a few chunks queued each stay far below the memory budget.
const CHUNK: usize = 256 << 10;
/// Chunks queued between a blob reader thread and its upload. Two are enough to keep a socket fed
/// from the page cache; every chunk more is 256 KiB per upload in flight. Eight held a third of a
/// core-shaped push's peak heap (`heaptrack`), and its peak RSS went from 58 to 49 MB with two, the
/// times unchanged within the machine's noise (docs/bench.md).
pub(super) const QUEUE: usize = 2;
/// Chunks queued behind the decoder of a compressed package. The decoder is the slow side there and
/// a short queue makes it wait whenever an upload stalls: a 1000 MiB `.tgz` push took 5.12 s with 2
/// and 4.83 s with 8 (medians of 6 interleaved pairs, page cache dropped).
pub(super) const PASS_QUEUE: usize = 8;
/// Full-size chunk buffers kept for reuse (2 MiB). Enough that a steady stream of large blobs
/// almost never maps a chunk (a 1 GiB push: 565 mmaps instead of 4,038); few enough that buffers
/// idle in the pool while other allocations peak (a core-shaped push's manifests, its many small
/// uploads) add little to the peak RSS. 64 kept (16 MiB) pushed a core-shaped push from 59 to
/// 68 MB.
const POOL_KEEP: usize = 8;

/// Bytes of blob bodies read and not yet sent, across all uploads to registries in the process.
/// The queues bound what one upload holds; this bounds their sum, which grows with the uploads in
/// flight: on a long round trip a push keeps up to four times as many (`scheduler::lanes`), and
/// at 100 ms a core-shaped push peaked at 74 MB without it and 62 MB with it, in the same time.
/// 16 MiB is more than the link sends in a round trip at 100 MiB/s.
const READ_AHEAD: usize = 16 << 20;
static AHEAD: Budget = Budget::new(READ_AHEAD);

/// A count of bytes that readers take before reading and give back when the bytes are dropped
/// (sent, or their upload gone). A reader waits while the budget is spent, except when nothing
/// at all is held, so a chunk always gets through.
struct Budget {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    const fn new(limit: usize) -> Self {
        Self {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Bytes taken and not yet given back.
    #[cfg(test)]
    fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `n` bytes, waiting (on a blocking thread) until they fit.
    fn take(&'static self, n: usize) -> Charge {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + n > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
        Charge { budget: self, n }
    }
}

/// Bytes taken from a [`Budget`]; given back when dropped.
struct Charge {
    budget: &'static Budget,
    n: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.n;
        drop(used);
        self.budget.freed.notify_all();
    }
}

/// Full-size chunk buffers whose bytes every upload holding them has dropped. A chunk is larger
/// than glibc's fixed mmap threshold (src/main.rs), so without reuse each one is an mmap and an
/// munmap: twice the system CPU of a 1 GiB push. A buffer is only allocated when none is free.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of `CHUNK` bytes from the pool, or a new one.
fn pooled_buffer() -> Vec<u8> {
    let reused = POOL.lock().ok().and_then(|mut free| free.pop());
    reused.unwrap_or_else(|| vec![0u8; CHUNK])
}

/// The owner behind a chunk's `Bytes`: fanned-out clones and the slices of a chunked upload share
/// it, and the last one dropped returns a full-size buffer to the pool and its bytes to the
/// read-ahead budget.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    _charge: Option<Charge>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.buf.len() != CHUNK {
            return;
        }
        if let Ok(mut free) = POOL.lock()
            && free.len() < POOL_KEEP
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

pub(super) fn entry_label(pkg: &package::Package, loc: &BlobLocation) -> String {
    let nest: String = loc.nest.iter().map(|n| format!("!{n}")).collect();
    format!("{}{nest} entry {}", pkg.path.display(), loc.entry)
}

/// Who proves that a package blob's bytes are the ones its digest names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// violet hashes them as it reads (the bytes go into a file: `violet package`).
    Digest,
    /// violet counts them; the registry they are uploaded to hashes them and commits nothing
    /// that does not match (the digest-checked `PUT` of the distribution API, `DIGEST_INVALID`
    /// otherwise). A second hash here would cost a core-second per GiB on the push's busiest
    /// thread and prove nothing more.
    Size,
}

/// Streams a readable blob from a blocking thread, checking it as it goes (see [`Check`]); the
/// last item is an error when the bytes do not match, which aborts the upload before the
/// registry commits it.
pub(super) fn spawn_reader(
    mut reader: Box<dyn Read + Send>,
    digest: Digest,
    size: u64,
    label: String,
    progress: Progress,
    check: Check,
) -> BlobStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUE);
    tokio::task::spawn_blocking(move || {
        let _ = pump(&mut reader, &digest, size, &label, &tx, &progress, check);
    });
    receiver_stream(rx)
}

/// Fans one blob body out to `n` upload bodies, each behind its own bounded queue: the source is
/// read once, a slow destination slows the reader (memory stays `n × depth` chunks), and a
/// destination whose upload stopped (its body dropped) is left out while the others keep being
/// fed. An error from the source (digest mismatch) reaches every body, so no registry commits
/// the blob. The returned future does the copying and must be polled alongside the uploads.
pub(super) fn fan_out(
    source: std::io::Result<BlobStream>,
    n: usize,
    depth: usize,
) -> (
    Vec<std::io::Result<BlobStream>>,
    futures_util::future::BoxFuture<'static, ()>,
) {
    let done = || -> futures_util::future::BoxFuture<'static, ()> { Box::pin(async {}) };
    let mut src = match source {
        Err(e) => {
            let copies = (0..n)
                .map(|_| Err(std::io::Error::new(e.kind(), e.to_string())))
                .collect();
            return (copies, done());
        }
        Ok(s) if n == 1 => return (vec![Ok(s)], done()),
        Ok(s) => s,
    };
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(depth))
        .unzip();
    let work = async move {
        let mut txs: Vec<Option<tokio::sync::mpsc::Sender<std::io::Result<Bytes>>>> =
            txs.into_iter().map(Some).collect();
        while let Some(item) = src.next().await {
            match item {
                Ok(chunk) => {
                    for slot in txs.iter_mut() {
                        if let Some(tx) = slot
                            && tx.send(Ok(chunk.clone())).await.is_err()
                        {
                            *slot = None;
                        }
                    }
                    if txs.iter().all(Option::is_none) {
                        return;
                    }
                }
                Err(e) => {
                    for tx in txs.iter().flatten() {
                        let _ = tx
                            .send(Err(std::io::Error::new(e.kind(), e.to_string())))
                            .await;
                    }
                    return;
                }
            }
        }
    };
    (
        rxs.into_iter().map(|rx| Ok(receiver_stream(rx))).collect(),
        Box::pin(work),
    )
}

fn receiver_stream(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> BlobStream {
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Copies `size` bytes from `reader` into `tx`; returns Err when the receiver went away.
fn pump(
    reader: &mut dyn Read,
    digest: &Digest,
    size: u64,
    label: &str,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    progress: &Progress,
    check: Check,
) -> Result<(), ()> {
    let mut hasher = (check == Check::Digest).then(Hasher::new);
    // Only bytes bound for a registry share the read-ahead budget: uploads take what they hold to
    // their registry and give it back without waiting for anything else. A package writer
    // (`Check::Digest`) keeps small blobs fetched ahead while it waits for the blob before them,
    // which a shared budget could leave waiting for itself.
    let budget = (check == Check::Size).then_some(&AHEAD);
    let mut total: u64 = 0;
    loop {
        // No bigger than what is left (one byte more, to see a blob longer than declared): a
        // chunk keeps its whole allocation while it is queued, and most blobs are small.
        let left = usize::try_from(size.saturating_sub(total)).unwrap_or(usize::MAX);
        let want = CHUNK.min(left.saturating_add(1));
        let charge = budget.map(|b| b.take(want));
        let mut buf = if want == CHUNK {
            pooled_buffer()
        } else {
            vec![0u8; want]
        };
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ =
                    tx.blocking_send(Err(std::io::Error::other(format!("reading {label}: {e}"))));
                return Err(());
            }
        };
        if let Some(hasher) = &mut hasher {
            hasher.update(&buf[..n]);
        }
        total += n as u64;
        if total > size {
            break;
        }
        let chunk = Bytes::from_owner(Chunk {
            buf,
            len: n,
            _charge: charge,
        });
        tx.blocking_send(Ok(chunk)).map_err(|_| ())?;
        progress.read(digest.as_str(), total - n as u64, n as u64);
    }
    let msg = if total != size {
        Some(format!(
            "{label}: blob {digest} size mismatch: expected {size} bytes, read {total}"
        ))
    } else {
        hasher
            .map(Hasher::finish)
            .filter(|a| a != digest)
            .map(|actual| {
                format!("{label}: blob does not match its digest (expected {digest}, got {actual})")
            })
    };
    if let Some(msg) = msg {
        let _ = tx.blocking_send(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            msg,
        )));
        return Err(());
    }
    Ok(())
}

/// One sequential pass over a compressed package: each wanted blob is handed to the async side as
/// a body stream while this thread feeds it, checked as `check` says.
pub(super) fn stream_pass(
    pkg: &package::Package,
    wanted: &HashSet<Digest>,
    tx: tokio::sync::mpsc::Sender<(Digest, String, BlobStream)>,
    progress: Progress,
    check: Check,
) -> Result<(), package::PackageError> {
    let size_of = |d: &Digest| pkg.blobs.get(d).map_or(0, |b| b.size);
    package::blobs::stream(
        pkg,
        &|d| wanted.contains(d),
        &mut |digest, location, reader| {
            let (btx, brx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PASS_QUEUE);
            let label = entry_label(pkg, location);
            if tx
                .blocking_send((digest.clone(), label.clone(), receiver_stream(brx)))
                .is_err()
            {
                return Ok(package::blobs::Flow::Stop);
            }
            // A failed upload drops the receiver; the rest of this entry is skipped by the reader.
            let _ = pump(
                reader,
                digest,
                size_of(digest),
                &label,
                &btx,
                &progress,
                check,
            );
            Ok(package::blobs::Flow::Continue)
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    async fn read_all(data: &[u8]) -> Vec<Vec<u8>> {
        let digest = Digest::of(data);
        let mut body = spawn_reader(
            Box::new(std::io::Cursor::new(data.to_vec())),
            digest,
            data.len() as u64,
            "test".into(),
            Progress::hidden(),
            Check::Digest,
        );
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            chunks.push(chunk.expect("the bytes match their digest").to_vec());
        }
        chunks
    }

    async fn read_checked(data: &[u8], digest: Digest, size: u64, check: Check) -> Vec<String> {
        let mut body = spawn_reader(
            Box::new(std::io::Cursor::new(data.to_vec())),
            digest,
            size,
            "pkg entry x".into(),
            Progress::hidden(),
            check,
        );
        let mut errors = Vec::new();
        while let Some(item) = body.next().await {
            if let Err(e) = item {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                errors.push(e.to_string());
            }
        }
        errors
    }

    /// Bytes bound for a file are hashed here; bytes bound for a registry only counted (the
    /// registry's check refuses a wrong digest), but a wrong length still ends the body.
    #[tokio::test]
    async fn a_body_is_checked_by_digest_or_by_size_as_asked() {
        let data = vec![7u8; 3 * CHUNK / 2];
        let other = Digest::of(b"something else");
        let n = data.len() as u64;
        let err = read_checked(&data, other.clone(), n, Check::Digest).await;
        assert!(err[0].contains("does not match its digest"), "{err:?}");
        assert!(
            read_checked(&data, other.clone(), n, Check::Size)
                .await
                .is_empty()
        );
        for size in [n - 1, n + 1] {
            let err = read_checked(&data, other.clone(), size, Check::Size).await;
            assert!(err[0].contains("size mismatch"), "{err:?}");
        }
        assert!(
            read_checked(&data, Digest::of(&data), n, Check::Digest)
                .await
                .is_empty()
        );
    }

    /// A reused buffer still holds the bytes of the blob before it: only what this read filled
    /// may reach the upload.
    #[tokio::test]
    async fn reused_chunk_buffers_carry_only_the_bytes_of_their_own_blob() {
        let first = vec![0xaa; 3 * CHUNK + 5];
        let second: Vec<u8> = (0..2 * CHUNK + CHUNK / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        for data in [&first, &second, &first] {
            let chunks = read_all(data).await;
            assert_eq!(chunks.concat(), *data);
            assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        }
        // A fanned-out chunk given back by every destination goes back to the pool once.
        let buf = pooled_buffer();
        let ptr = buf.as_ptr();
        let chunk = Bytes::from_owner(Chunk {
            buf,
            len: 10,
            _charge: None,
        });
        let (a, mut b) = (chunk.clone(), chunk);
        let tail = b.split_off(4);
        drop((a, b));
        let held = POOL.lock().unwrap().iter().any(|v| v.as_ptr() == ptr);
        assert!(!held, "returned while a slice still holds it");
        // Room in the pool, whatever other tests gave back.
        POOL.lock().unwrap().clear();
        drop(tail);
        let back = POOL.lock().unwrap().iter().any(|v| v.as_ptr() == ptr);
        assert!(back, "the last holder returns the buffer");
    }

    /// A reader counting what is taken from it.
    struct Counted(Arc<AtomicU64>);

    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
            Ok(buf.len())
        }
    }

    /// Memory per upload in flight is what its reader may run ahead: the queue, and the chunk
    /// waiting for room in it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_runs_at_most_the_queue_ahead_of_its_upload() {
        let read = Arc::new(AtomicU64::new(0));
        let size = 64 * CHUNK as u64;
        let reader = Box::new(Counted(read.clone()).take(size));
        let digest = Digest::of(b"");
        let body = spawn_reader(
            reader,
            digest,
            size,
            "test".into(),
            Progress::hidden(),
            Check::Size,
        );
        // Nothing takes from `body`: the reader fills the queue and waits.
        let mut last = u64::MAX;
        for _ in 0..500 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let now = read.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let ahead = read.load(Ordering::Relaxed);
        assert!(ahead > 0, "the reader started");
        // What it holds counts on the process's read-ahead budget (other tests may hold more).
        assert!(
            AHEAD.used() as u64 >= ahead,
            "read {ahead} bytes ahead uncounted"
        );
        // Two queued chunks and one waiting: 768 KiB.
        assert!(
            ahead <= 3 * CHUNK as u64,
            "read {ahead} bytes ahead of the upload, more than two queued chunks and one waiting"
        );
        drop(body);
    }

    /// However many readers run, what they hold together stays within the budget; a reader
    /// waiting for room goes on once bytes are given back.
    #[test]
    fn readers_together_hold_at_most_the_budget() {
        static SMALL: Budget = Budget::new(4 * CHUNK);
        let held = Arc::new(Mutex::new(Vec::new()));
        let most = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (held, most) = (held.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        let charge = SMALL.take(CHUNK);
                        most.fetch_max(SMALL.used() as u64, Ordering::Relaxed);
                        held.lock().unwrap().push(charge);
                    }
                })
            })
            .collect();
        // Give back what is held until every reader got its four chunks through.
        while !readers.iter().all(|r| r.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(SMALL.used() <= 4 * CHUNK, "{} bytes held", SMALL.used());
            held.lock().unwrap().clear();
        }
        held.lock().unwrap().clear();
        assert_eq!(SMALL.used(), 0);
        assert!(most.load(Ordering::Relaxed) <= 4 * CHUNK as u64);
    }
}
