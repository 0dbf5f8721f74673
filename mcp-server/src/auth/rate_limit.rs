//! Failed-authentication limits per client IP, over a sliding window.
//!
//! Every refused bearer token and every wrong password counts as a failure of
//! the client IP that sent it. An IP with `max_failures` failures in the last
//! `window` is answered 429 with `Retry-After` (the time until its oldest
//! failure leaves the window), whatever it sends. Successful requests do not
//! reset the count, so a valid token cannot be used to keep guessing.
//!
//! Checking and counting a failure are one step under one lock
//! ([`FailureLimiter::record_failure`]): of many concurrent wrong guesses
//! from one IP, exactly `max_failures` are answered as failures and the rest
//! as over the limit, however they interleave. The table of IPs is bounded:
//! old entries are pruned, and when it is full of live entries, new failures
//! are still counted by evicting the stalest.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How many distinct client IPs are tracked at most.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    /// False while the table is empty, the usual case: every request checks
    /// the limit, and this spares them all the lock.
    any: AtomicBool,
}

impl FailureLimiter {
    pub fn new(max_failures: usize, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
            any: AtomicBool::new(false),
        }
    }

    /// `Err(retry_after)` when `ip` is over the limit now.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let Some(times) = map.get_mut(&ip) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.is_empty() {
            map.remove(&ip);
            self.any.store(!map.is_empty(), Ordering::Release);
            return Ok(());
        }
        if times.len() >= self.max_failures {
            let oldest = times.front().copied().unwrap_or(now);
            let retry = self.window.saturating_sub(now.duration_since(oldest));
            return Err(retry.max(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// Count one failed authentication from `ip`, if `ip` is still under
    /// the limit; `Err(retry_after)` if it was over it already (the failure
    /// is then not counted: it is refused as over the limit).
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), Duration> {
        self.record_at(ip, Instant::now())
    }

    fn record_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        if let Some(times) = map.get_mut(&ip) {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                times.pop_front();
            }
            if times.len() >= self.max_failures {
                let oldest = times.front().copied().unwrap_or(now);
                let retry = self.window.saturating_sub(now.duration_since(oldest));
                return Err(retry.max(Duration::from_secs(1)));
            }
        }
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let window = self.window;
            map.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
            if map.len() >= MAX_TRACKED {
                let stalest = map
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(s) = stalest {
                    map.remove(&s);
                }
            }
        }
        let times = map.entry(ip).or_default();
        times.push_back(now);
        self.any.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_per_ip() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check_at(a, t0 + Duration::from_secs(i)).is_ok());
            assert!(l.record_at(a, t0 + Duration::from_secs(i)).is_ok());
        }
        let retry = l.check_at(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(
            l.check_at(b, t0 + Duration::from_secs(10)).is_ok(),
            "other IPs are not affected"
        );
        // The oldest failure leaves the window at t0+60: one slot frees up.
        assert!(l.check_at(a, t0 + Duration::from_secs(60)).is_ok());
        assert!(l.record_at(a, t0 + Duration::from_secs(60)).is_ok());
        assert!(
            l.record_at(a, t0 + Duration::from_secs(60)).is_err(),
            "over the limit: refused, not counted"
        );
        assert!(l.check_at(a, t0 + Duration::from_secs(60)).is_err());
        // At t0+61 the failure of t0+1 leaves too.
        assert!(l.check_at(a, t0 + Duration::from_secs(61)).is_ok());
        assert!(l.check_at(a, t0 + Duration::from_secs(200)).is_ok());
    }

    #[test]
    fn the_lock_free_check_sees_failures_and_their_expiry() {
        let l = FailureLimiter::new(2, Duration::from_millis(200));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.record_failure(a).is_ok());
        assert!(l.check(a).is_ok());
        assert!(l.record_failure(a).is_ok());
        assert!(l.check(a).is_err());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.check(a).is_ok());
        assert!(
            !l.any.load(Ordering::Acquire),
            "an expired table is empty again"
        );
        assert!(l.record_failure(a).is_ok());
        assert!(l.record_failure(a).is_ok());
        assert!(l.check(a).is_err(), "and counts again after that");
    }

    #[test]
    fn concurrent_failures_never_overshoot_the_limit() {
        for _ in 0..20 {
            let l = std::sync::Arc::new(FailureLimiter::new(10, Duration::from_secs(60)));
            let a: IpAddr = "192.0.2.9".parse().unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let counted: usize = (0..8)
                .map(|_| {
                    let (l, barrier) = (l.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        (0..5)
                            .filter(|_| l.check(a).is_ok() && l.record_failure(a).is_ok())
                            .count()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(counted, 10, "exactly the limit is answered as failures");
        }
    }
}
