//! Capped exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `cap`, each drawn uniformly from
/// `[delay/2, delay]` so that a fleet restarted together does not retry in
/// lock step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let low = ceiling / 2;
        let spread = ceiling.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(rand::rng().random_range(0..=spread))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// `interval` ± `fraction` of it, drawn uniformly (`fraction` 0.1 = ±10%).
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    let fraction = fraction.clamp(0.0, 1.0);
    if fraction == 0.0 {
        return interval;
    }
    let f = rand::rng().random_range(-fraction..=fraction);
    interval.mul_f64((1.0 + f).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[7] >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10), 0.1);
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11));
        }
        assert_eq!(
            jittered(Duration::from_secs(3), 0.0),
            Duration::from_secs(3)
        );
    }
}
