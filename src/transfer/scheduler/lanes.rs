//! How many requests of each kind a push keeps in flight, sized by the round trip to the
//! registry.
//!
//! A blob's upload costs two round trips (open the session, send the bytes) besides its bytes,
//! a mount or a manifest one. On a link of up to [`SHORT_LINK`] the counts below keep the link or
//! the registry busy (docs/bench.md, the WAN profile at 20 ms); on a longer one the same counts
//! leave the link idle between round trips: at 100 ms a 4 MiB upload is 40 ms of bytes and 200 ms
//! of waiting, and the core-shaped push took 1.5× bytes ÷ bandwidth. So the counts grow with the
//! round trip, up to [`MAX_WIDEN`] times. What the uploads hold in bytes is bounded by the
//! read-ahead budget they share (`transfer::body`), so a wider push costs mostly connections and
//! requests: at 100 ms the core-shaped push peaks at 59-63 MB against 51 (docs/push.md, "Long
//! round trips").
//!
//! The round trip is the quickest `HEAD` or `GET` a destination (or a source registry of `mirror`)
//! answered before the transfer (the tag and large-blob checks, the source's manifests): the
//! least the registry took, its load aside. A registry slow under load answers its first checks
//! quickly and is not taken for a long link; one slow even when idle gets more requests in flight,
//! as a long link does, and a request waiting there costs it nothing but the connection.
//!
//! The checks are sized the same way by what was answered before them: the tag checks by the
//! `/v2/` ping alone, the blob checks by the tag checks too. The ping's time may include the
//! connection's handshakes, so the tag checks may widen more than the link needs; a `HEAD` costs
//! the registry little. At 100 ms the core-shaped push's first upload starts 0.5 s sooner with
//! 128 checks at once than with 64 (18.1 s to 17.6 s; docs/push.md, "Long round trips").

use std::time::Duration;

/// Round trips up to this keep the base counts.
pub(super) const SHORT_LINK: Duration = Duration::from_millis(25);
/// The most the counts grow (at 4 × [`SHORT_LINK`] = 100 ms and beyond).
const MAX_WIDEN: f64 = 4.0;
/// Mounts, and images committed, at once on a short link: bodiless or small requests.
const BASE_BODILESS: usize = 16;
/// Tag and blob checks (`HEAD`s) at once on a short link: the cheapest requests, and the ones
/// every upload waits for.
const BASE_CHECKS: usize = 64;

/// The in-flight counts of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lanes {
    /// Uploads of blobs of 1 MiB or more (`--jobs` on a short link).
    pub large: usize,
    /// Uploads of smaller blobs: round trips more than bytes, so eight times `--jobs`
    /// (`--jobs 1` stays strictly one upload at a time). Each holds bytes only while its PUT runs.
    /// On the WAN profile, 4 × `jobs` left the small blobs running for seconds after the large
    /// ones; 16 × `jobs` was no faster than 8 ×.
    pub small: usize,
    /// Cross-repository mounts.
    pub mounts: usize,
    /// Images committed at once (a few manifest requests each).
    pub commits: usize,
    /// Tag and blob checks at once: before the first upload, so they are sized by the first
    /// answers (the registry's `/v2/` ping, then the tag checks).
    pub checks: usize,
}

impl Lanes {
    /// The counts for `--jobs jobs` and the round trip measured to the destinations (the
    /// longest of them: the uploads are shared by all), `None` when none was measured.
    pub fn new(jobs: usize, round_trip: Option<Duration>) -> Self {
        let widen = round_trip.map_or(1.0, |rtt| {
            (rtt.as_secs_f64() / SHORT_LINK.as_secs_f64()).clamp(1.0, MAX_WIDEN)
        });
        // A large upload waits two round trips for every blob it sends, and its bytes are what
        // fills the link, so its count grows with the round trip. The cheap requests grow with its
        // square root: each costs a connection and buffers (at 100 ms, four times as many took the
        // push to 69 MB for no time gained over twice as many: 18.6 s against 18.4 s at 62 MB).
        let scaled = |n: usize, by: f64| (n as f64 * by).ceil() as usize;
        let jobs = jobs.max(1);
        let (large, small) = if jobs == 1 {
            (1, 1)
        } else {
            (scaled(jobs, widen), scaled(jobs * 8, widen.sqrt()))
        };
        Self {
            large,
            small,
            mounts: scaled(BASE_BODILESS, widen.sqrt()),
            commits: scaled(BASE_BODILESS, widen.sqrt()),
            checks: scaled(BASE_CHECKS, widen.sqrt()),
        }
    }

    /// Whether the round trip widened the counts beyond the base ones.
    pub fn widened(&self, jobs: usize) -> bool {
        *self != Self::new(jobs, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn a_short_or_unmeasured_link_keeps_the_base_counts() {
        let base = Lanes {
            large: 4,
            small: 32,
            mounts: 16,
            commits: 16,
            checks: 64,
        };
        assert_eq!(Lanes::new(4, None), base);
        assert_eq!(Lanes::new(4, ms(0)), base);
        assert_eq!(Lanes::new(4, ms(21)), base);
        assert_eq!(Lanes::new(4, Some(SHORT_LINK)), base);
        assert!(!Lanes::new(4, ms(21)).widened(4));
    }

    #[test]
    fn the_counts_grow_with_the_round_trip_up_to_four_times() {
        let at50 = Lanes::new(4, ms(50));
        assert_eq!(
            (at50.large, at50.small, at50.mounts, at50.commits),
            (8, 46, 23, 23)
        );
        assert!(at50.widened(4));
        let at100 = Lanes::new(4, ms(100));
        assert_eq!(
            (at100.large, at100.small, at100.mounts, at100.commits),
            (16, 64, 32, 32)
        );
        assert_eq!(at100.checks, 128);
        assert_eq!(Lanes::new(4, ms(600)), at100);
        let at30 = Lanes::new(4, ms(30));
        assert_eq!((at30.large, at30.small, at30.mounts), (5, 36, 18));
    }

    #[test]
    fn jobs_one_stays_one_upload_at_a_time_on_any_link() {
        let l = Lanes::new(1, ms(200));
        assert_eq!((l.large, l.small), (1, 1));
        assert_eq!((l.mounts, l.commits), (32, 32));
    }
}
