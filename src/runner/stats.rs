//! Latency and throughput statistics without allocation after construction: a rolling window
//! in `heapless::HistoryBuffer`s and a log-bucketed histogram of every frame for percentiles.

use std::time::Instant;

use heapless::HistoryBuffer;
use serde::Serialize;

/// Frames in the rolling window.
pub const WINDOW: usize = 64;

/// Histogram buckets: bucket `i` holds latencies in `[R^i, R^(i+1))` µs with `R = 1.02`, so
/// percentiles are exact to ±1 %; the last bucket holds everything from about 20 minutes up.
const BUCKETS: usize = 1200;
const RATIO_LN: f64 = 0.019_802_627_296_179_7; // ln(1.02)

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Running statistics of a frame stream.
#[derive(Debug)]
pub struct Stats {
    latencies: HistoryBuffer<f32, WINDOW>,
    done_at: HistoryBuffer<f64, WINDOW>,
    hist: Box<[u32; BUCKETS]>,
    count: u64,
    sum_ms: f64,
    min_ms: f64,
    max_ms: f64,
    start: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(ms: f64) -> usize {
    let us = (ms * 1e3).max(1.0);
    ((us.ln() / RATIO_LN) as usize).min(BUCKETS - 1)
}

fn bucket_value_ms(i: usize) -> f64 {
    // Geometric middle of the bucket.
    ((i as f64 + 0.5) * RATIO_LN).exp() / 1e3
}

impl Stats {
    /// Empty statistics; the clock for the FPS starts now.
    pub fn new() -> Self {
        Stats {
            latencies: HistoryBuffer::new(),
            done_at: HistoryBuffer::new(),
            hist: Box::new([0; BUCKETS]),
            count: 0,
            sum_ms: 0.0,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
            start: Instant::now(),
        }
    }

    /// Restarts the clock (call when the first frame is about to be read).
    pub fn restart_clock(&mut self) {
        self.start = Instant::now();
    }

    /// Records one processed frame that took `ms`, finished at `now`.
    pub fn record(&mut self, ms: f64, now: Instant) {
        let ms = if ms.is_finite() && ms >= 0.0 { ms } else { 0.0 };
        self.latencies.write(ms as f32);
        self.done_at.write(now.saturating_duration_since(self.start).as_secs_f64());
        self.hist[bucket(ms)] += 1;
        self.count += 1;
        self.sum_ms += ms;
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// Frames recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Frames per second over the rolling window (0 until two frames are done).
    pub fn rolling_fps(&self) -> f64 {
        let n = self.done_at.len();
        if n < 2 {
            return 0.0;
        }
        let (Some(first), Some(last)) = (self.done_at.oldest_ordered().next(), self.done_at.recent()) else { return 0.0 };
        let span = last - first;
        if span > 0.0 {
            (n - 1) as f64 / span
        } else {
            0.0
        }
    }

    /// Median latency of the rolling window, in ms (sorted on the stack).
    pub fn rolling_p50(&self) -> f64 {
        let mut v = [0f32; WINDOW];
        let n = self.latencies.len();
        for (d, s) in v.iter_mut().zip(self.latencies.oldest_ordered()) {
            *d = *s;
        }
        let v = &mut v[..n];
        if v.is_empty() {
            return 0.0;
        }
        v.sort_unstable_by(f32::total_cmp);
        v[n / 2] as f64
    }

    /// Frames per second since the clock started.
    pub fn overall_fps(&self) -> f64 {
        let t = self.start.elapsed().as_secs_f64();
        if t > 0.0 {
            self.count as f64 / t
        } else {
            0.0
        }
    }

    /// Seconds since the clock started.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Mean, percentiles (±1 %), min and max of every recorded frame.
    pub fn latency(&self) -> Latency {
        if self.count == 0 {
            return Latency::default();
        }
        let pct = |p: f64| {
            let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
            let mut seen = 0u64;
            for (i, &c) in self.hist.iter().enumerate() {
                seen += c as u64;
                if seen >= rank {
                    return bucket_value_ms(i).clamp(self.min_ms, self.max_ms);
                }
            }
            self.max_ms
        };
        Latency { mean: self.sum_ms / self.count as f64, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), min: self.min_ms, max: self.max_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_within_one_percent() {
        let mut s = Stats::new();
        let t0 = s.start;
        for i in 1..=1000 {
            s.record(i as f64 / 10.0, t0 + Duration::from_millis(i * 10));
        }
        let l = s.latency();
        for (got, want) in [(l.p50, 50.0), (l.p90, 90.0), (l.p99, 99.0)] {
            assert!((got / want - 1.0).abs() < 0.011, "{got} vs {want}");
        }
        assert_eq!((l.min, l.max), (0.1, 100.0));
        assert!((l.mean - 50.05).abs() < 1e-9);
        // The window holds the last 64 frames, 10 ms apart: 100 fps.
        assert!((s.rolling_fps() - 100.0).abs() < 1e-6, "{}", s.rolling_fps());
        let want_p50 = (1000 - 64 + 1 + 32) as f64 / 10.0;
        assert!((s.rolling_p50() - want_p50).abs() < 1e-4, "{}", s.rolling_p50());
        assert_eq!(Stats::new().latency(), Latency::default());
    }
}
