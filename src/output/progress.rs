//! Byte progress for pushes: an indicatif bar on a terminal, a plain line every few seconds
//! otherwise (CI logs), nothing under `--quiet`.

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
    finished: AtomicBool,
    bar: Option<ProgressBar>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
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
            inner: Arc::new(Inner {
                total: AtomicU64::new(0),
                done: AtomicU64::new(0),
                finished: AtomicBool::new(false),
                bar,
                ticker: Mutex::new(None),
            }),
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
            inner: Arc::new(Inner {
                total: AtomicU64::new(0),
                done: AtomicU64::new(0),
                finished: AtomicBool::new(false),
                bar: None,
                ticker: Mutex::new(None),
            }),
        }
    }

    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            b.set_length(total);
        }
    }

    pub fn add(&self, n: u64) {
        self.inner.done.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            b.inc(n);
        }
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
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(1048576000), "1000.0 MiB");
    }
}
