//! The sign-in throttle's arithmetic (OAuth 2.1 section 7.4 / RFC 6819 section 5.1.4.2.3 on
//! online guessing): each attempt is counted before its password is checked; a few attempts are
//! free, then each waits longer, and once the free ones are used, attempts for one user or one
//! address run one at a time. Pure: a store applies it to its counters in one atomic step.

/// The counters of one key (`user:<name>` or `addr:<ip>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInCounter {
    /// Attempts counted within the window (a success clears them).
    pub failures: u32,
    /// Unix seconds of the last attempt counted.
    pub last_attempt: u64,
    /// Attempts whose password check has not finished.
    pub in_flight: u32,
    /// After this, `in_flight` is stale (its requests were dropped) and counts as 0.
    pub lease_until: u64,
}

/// The answer to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check the password after waiting `delay` seconds.
    Go { delay: u64 },
    /// Do not check now: another attempt for the same user or address is running.
    Wait { retry_after: u64 },
}

/// The throttle's settings.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub free_tries: u32,
    /// Seconds after the last attempt at which a key's count starts again.
    pub window: u64,
    /// Seconds an in-flight attempt holds its place (beyond its delay) if it never finishes.
    pub lease: u64,
    /// The longest delay, in seconds.
    pub max_delay: u64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_tries: 3,
            window: 15 * 60,
            lease: 30,
            max_delay: 8,
        }
    }
}

impl ThrottlePolicy {
    /// The wait before checking the attempt that follows `failures` counted ones.
    pub fn delay(&self, failures: u32) -> u64 {
        if failures < self.free_tries {
            0
        } else {
            (1u64 << (failures - self.free_tries).min(16)).min(self.max_delay)
        }
    }

    /// Applies one attempt to the counters of all its keys at once.
    pub fn attempt(&self, counters: &mut [&mut SignInCounter], now: u64) -> Attempt {
        for c in counters.iter_mut() {
            if now >= c.last_attempt.saturating_add(self.window) {
                c.failures = 0;
            }
            if now >= c.lease_until {
                c.in_flight = 0;
            }
        }
        let worst = counters.iter().map(|c| c.failures).max().unwrap_or(0);
        let busy = counters.iter().any(|c| c.in_flight > 0);
        let delay = self.delay(worst);
        if worst >= self.free_tries && busy {
            return Attempt::Wait {
                retry_after: delay.max(1),
            };
        }
        for c in counters.iter_mut() {
            c.failures += 1;
            c.last_attempt = now;
            c.in_flight += 1;
            c.lease_until = c.lease_until.max(now + delay + self.lease);
        }
        Attempt::Go { delay }
    }

    /// An attempt's password check finished; a success clears the counts.
    pub fn finish(&self, counter: &mut SignInCounter, succeeded: bool) {
        counter.in_flight = counter.in_flight.saturating_sub(1);
        if succeeded {
            counter.failures = 0;
        }
    }

    /// Whether a key holds nothing worth keeping at `now`.
    pub fn is_idle(&self, c: &SignInCounter, now: u64) -> bool {
        (c.failures == 0 || now >= c.last_attempt.saturating_add(self.window))
            && (c.in_flight == 0 || now >= c.lease_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_tries_then_one_at_a_time_with_growing_delays() {
        let p = ThrottlePolicy::default();
        let mut c = SignInCounter::default();
        for _ in 0..3 {
            assert_eq!(p.attempt(&mut [&mut c], 100), Attempt::Go { delay: 0 });
        }
        // The three free attempts are still running: the fourth waits.
        assert!(matches!(
            p.attempt(&mut [&mut c], 100),
            Attempt::Wait { .. }
        ));
        for _ in 0..3 {
            p.finish(&mut c, false);
        }
        assert_eq!(p.attempt(&mut [&mut c], 100), Attempt::Go { delay: 1 });
        assert!(matches!(
            p.attempt(&mut [&mut c], 100),
            Attempt::Wait { retry_after: 2 }
        ));
        p.finish(&mut c, false);
        assert_eq!(p.attempt(&mut [&mut c], 101), Attempt::Go { delay: 2 });
        p.finish(&mut c, true);
        assert_eq!(p.attempt(&mut [&mut c], 102), Attempt::Go { delay: 0 });
    }

    #[test]
    fn a_dropped_attempt_frees_its_place_when_its_lease_ends() {
        let p = ThrottlePolicy::default();
        let mut c = SignInCounter {
            failures: 5,
            last_attempt: 100,
            in_flight: 1,
            lease_until: 140,
        };
        assert!(matches!(
            p.attempt(&mut [&mut c], 120),
            Attempt::Wait { .. }
        ));
        assert!(matches!(p.attempt(&mut [&mut c], 140), Attempt::Go { .. }));
    }
}
