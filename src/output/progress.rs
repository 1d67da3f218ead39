//! Byte progress for pushes: an indicatif bar on a terminal, a plain line every few seconds
//! otherwise (CI logs), nothing under `--quiet`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Printer;

const LINE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    total: AtomicU64,
    done: AtomicU64,
    /// Bytes read again for a blob (a retried upload, a further pass over a compressed package):
    /// kept out of `done` so the bar never passes 100 %, and reported apart.
    resent: AtomicU64,
    /// Per blob, how far its bytes have been read so far.
    reached: Mutex<HashMap<String, u64>>,
    finished: AtomicBool,
    bar: Option<ProgressBar>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Inner {
    fn new(bar: Option<ProgressBar>) -> Self {
        Self {
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            reached: Mutex::new(HashMap::new()),
            finished: AtomicBool::new(false),
            bar,
            ticker: Mutex::new(None),
        }
    }
}

impl Progress {
    /// Chooses the display from the printer: bars on a terminal, lines otherwise.
    pub fn new(printer: &Printer, label: &str) -> Self {
        let bar = printer.progress_bars().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        let p = Self {
            inner: Arc::new(Inner::new(bar)),
        };
        if printer.progress_lines() {
            let weak = Arc::downgrade(&p.inner);
            let label = label.to_string();
            let handle = std::thread::spawn(move || {
                let start = Instant::now();
                loop {
                    // Sleep in small steps so finish() is not delayed by a whole interval.
                    let wake = Instant::now() + LINE_INTERVAL;
                    while Instant::now() < wake {
                        std::thread::sleep(Duration::from_millis(100));
                        match weak.upgrade() {
                            Some(i) if !i.finished.load(Ordering::Relaxed) => {}
                            _ => return,
                        }
                    }
                    let Some(i) = weak.upgrade() else { return };
                    let done = i.done.load(Ordering::Relaxed);
                    let total = i.total.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64().max(0.001);
                    eprintln!(
                        "{label}: {} / {} ({}/s)",
                        human_bytes(done),
                        human_bytes(total),
                        human_bytes((done as f64 / secs) as u64)
                    );
                }
            });
            *p.inner.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        p
    }

    /// A progress that displays nothing (tests, dry runs).
    pub fn hidden() -> Self {
        Self {
            inner: Arc::new(Inner::new(None)),
        }
    }

    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            b.set_length(total);
        }
    }

    /// `n` bytes of the total will not be read after all (an upload found its blob already at the
    /// destination), so the bar still ends at 100 %.
    pub fn skip(&self, n: u64) {
        let _ = self
            .inner
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(n))
            });
        if let Some(b) = &self.inner.bar {
            b.set_length(self.inner.total.load(Ordering::Relaxed));
        }
    }

    /// Counts `n` bytes done, never past the total once one is set.
    pub fn add(&self, n: u64) {
        let total = self.inner.total.load(Ordering::Relaxed);
        let _ = self
            .inner
            .done
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let next = v.saturating_add(n);
                Some(if total > 0 {
                    next.min(total.max(v))
                } else {
                    next
                })
            });
        if let Some(b) = &self.inner.bar {
            b.set_position(self.inner.done.load(Ordering::Relaxed));
        }
    }

    /// Bytes `start..start + n` of blob `key` were read. Only bytes past the furthest point read
    /// before for that blob count as progress; the rest were read again after a retry and are
    /// counted apart ([`Self::resent`]).
    pub fn read(&self, key: &str, start: u64, n: u64) {
        let fresh = {
            let mut reached = self.inner.reached.lock().unwrap_or_else(|e| e.into_inner());
            let hw = reached.entry(key.to_string()).or_insert(0);
            let end = start.saturating_add(n);
            let fresh = end.saturating_sub((*hw).max(start));
            *hw = (*hw).max(end);
            fresh
        };
        if fresh > 0 {
            self.add(fresh);
        }
        self.inner
            .resent
            .fetch_add(n.saturating_sub(fresh), Ordering::Relaxed);
    }

    /// Bytes read again for blobs already read (up to that point) before.
    pub fn resent(&self) -> u64 {
        self.inner.resent.load(Ordering::Relaxed)
    }

    /// Bytes counted as done.
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Bytes expected in all (after [`Self::skip`]s).
    pub fn total(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Takes back bytes of an attempt that is being retried from the start.
    pub fn sub(&self, n: u64) {
        if n == 0 {
            return;
        }
        let _ = self
            .inner
            .done
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        if let Some(b) = &self.inner.bar {
            b.set_position(self.inner.done.load(Ordering::Relaxed));
        }
    }

    pub fn finish(&self) {
        self.inner.finished.store(true, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            b.finish_and_clear();
        }
        if let Some(h) = self
            .inner
            .ticker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

/// `1.5 GiB`-style sizes for humans.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn bytes_read_again_are_counted_apart() {
        let p = Progress::hidden();
        p.set_total(100);
        // A first attempt reads 60 bytes and fails; the retry reads the blob from the start.
        p.read("sha256:a", 0, 60);
        p.read("sha256:a", 0, 50);
        p.read("sha256:a", 50, 50);
        assert_eq!((p.done(), p.resent()), (100, 60));
        // A further pass over the whole blob adds nothing to the total.
        p.read("sha256:a", 0, 100);
        assert_eq!((p.done(), p.resent()), (100, 160));
        // Even a caller that over-counts cannot push the bar past 100 %.
        p.add(10);
        assert_eq!(p.done(), 100);
    }

    #[test]
    fn skipped_bytes_leave_the_total() {
        let p = Progress::hidden();
        p.set_total(100);
        p.read("sha256:a", 0, 70);
        // The other 30 bytes' blob was already at the destination: nothing will read it.
        p.skip(30);
        assert_eq!((p.done(), p.total()), (70, 70));
        p.skip(1000);
        assert_eq!(p.total(), 0);
    }

    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(1048576000), "1000.0 MiB");
    }
}
