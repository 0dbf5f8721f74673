//! Deadlines for work on a file from outside: how long a check or a load of
//! a `kb.db` may run, and what ends it early.
//!
//! A [`Deadline`] ends at a time (`--timeout`, a verification limit), when
//! its [`Cancel`] is set (a newer file arrived, so this one's load is moot)
//! or when the process is terminating (SIGTERM or SIGINT:
//! [`crate::signals::terminating`]), whichever comes first. SQLite
//! statements never stop on their own (a view over an endless recursive
//! query runs for ever), so every connection that verifies or loads a
//! knowledge base is [`Deadline::guard`]ed: a progress handler asks the
//! deadline every few thousand virtual-machine steps and interrupts the
//! statement once it has passed. [`Deadline::explain`] then turns SQLite's
//! "interrupted" into the reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::{Error, Result};

/// Virtual-machine steps between two looks at the deadline: a look is a
/// clock read and two atomic loads, and SQLite runs about 10 million steps
/// a second, so a statement stops within a millisecond of the deadline for
/// a cost no benchmark sees.
const STEPS_PER_LOOK: i32 = 10_000;

/// A flag that ends the deadlines made with it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// When work on a file must stop. Cheap to clone; the default has no time
/// limit and no cancel flag, and still ends when the process terminates.
#[derive(Debug, Clone, Default)]
pub struct Deadline {
    at: Option<Instant>,
    /// What the time limit is, for the message (`"--timeout 10s"`).
    limit: Option<String>,
    cancel: Option<Cancel>,
    /// [`Deadline::never`]: not even termination ends it.
    never: bool,
}

impl Deadline {
    /// No time limit: only termination ends it.
    pub fn none() -> Deadline {
        Deadline::default()
    }

    /// Nothing ends it, not even termination, and [`Deadline::guard`]
    /// installs nothing: for the connections a server's searches read hits
    /// with (each statement bounded), which must keep answering while the
    /// server drains after SIGTERM.
    pub fn never() -> Deadline {
        Deadline {
            never: true,
            ..Deadline::default()
        }
    }

    /// `limit` from now; `what` names the limit in the message when it
    /// passes (e.g. `"--timeout"`).
    pub fn after(limit: Duration, what: &str) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(limit),
            limit: Some(format!("{what} {}", humantime::format_duration(limit))),
            cancel: None,
            never: false,
        }
    }

    /// The earlier of `self` and `other` (its limit and cancel flag too,
    /// if `self` has none).
    pub fn min(self, other: &Deadline) -> Deadline {
        let other_first = match (self.at, other.at) {
            (Some(a), Some(b)) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        let (at, limit) = if other_first {
            (other.at, other.limit.clone())
        } else {
            (self.at, self.limit)
        };
        Deadline {
            at,
            limit,
            cancel: self.cancel.or_else(|| other.cancel.clone()),
            never: self.never && other.never,
        }
    }

    /// Also ends when `cancel` is set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Deadline {
        self.cancel = Some(cancel);
        self
    }

    /// Why it has passed, if it has.
    pub fn passed(&self) -> Option<String> {
        if self.never {
            return None;
        }
        if crate::signals::terminating() {
            return Some("the process is terminating".to_string());
        }
        if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            return Some("a newer version of the file arrived".to_string());
        }
        match self.at {
            Some(at) if Instant::now() >= at => Some(format!(
                "{} passed",
                self.limit.as_deref().unwrap_or("the time limit")
            )),
            _ => None,
        }
    }

    /// `Err(Error::Interrupted)` if it has passed.
    pub fn check(&self) -> Result<()> {
        match self.passed() {
            Some(why) => Err(Error::Interrupted(why)),
            None => Ok(()),
        }
    }

    /// Make every statement on `conn` stop once this deadline has passed.
    pub fn guard(&self, conn: &mut Connection) -> Result<()> {
        if self.never {
            return Ok(());
        }
        let deadline = self.clone();
        conn.progress_handler(STEPS_PER_LOOK, Some(move || deadline.passed().is_some()))?;
        Ok(())
    }

    /// `err`, or the reason the deadline passed if it has (SQLite reports
    /// an interrupted statement as an error of its own).
    pub fn explain(&self, err: Error) -> Error {
        match (self.passed(), err) {
            (Some(why), Error::Sqlite(_) | Error::Interrupted(_)) => Error::Interrupted(why),
            (_, err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                           SELECT count(*) FROM c";

    fn run(deadline: &Deadline) -> Result<i64> {
        let mut conn = Connection::open_in_memory()?;
        deadline.guard(&mut conn)?;
        conn.query_row(ENDLESS, [], |r| r.get(0))
            .map_err(|e| deadline.explain(e.into()))
    }

    /// Issue 29, finding 3: nothing interrupted an SQLite statement. A
    /// guarded one stops within milliseconds of its deadline, with the
    /// reason.
    #[test]
    fn an_endless_statement_stops_at_the_deadline() {
        let t = Instant::now();
        let e = run(&Deadline::after(Duration::from_millis(50), "--timeout")).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(e.to_string(), "gave up: --timeout 50ms passed");
        let cancel = Cancel::new();
        let deadline = Deadline::none().with_cancel(cancel.clone());
        let worker = std::thread::spawn(move || run(&deadline));
        std::thread::sleep(Duration::from_millis(30));
        cancel.cancel();
        let e = worker.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("a newer version"), "{e}");
    }

    #[test]
    fn a_never_deadline_guards_nothing() {
        assert!(run(&Deadline::after(Duration::from_millis(20), "t")).is_err());
        let never = Deadline::never();
        assert!(never.passed().is_none() && never.check().is_ok());
        let mut conn = Connection::open_in_memory().unwrap();
        never.guard(&mut conn).unwrap();
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                 SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 300_000);
    }

    #[test]
    fn the_earlier_deadline_wins() {
        let long = Deadline::after(Duration::from_secs(3600), "--verify-timeout");
        let short = Deadline::after(Duration::from_millis(1), "--timeout");
        std::thread::sleep(Duration::from_millis(5));
        let both = long.clone().min(&short);
        assert_eq!(both.passed().as_deref(), Some("--timeout 1ms passed"));
        assert!(long.passed().is_none());
        assert!(Deadline::none().min(&long).passed().is_none());
        assert!(Deadline::none().check().is_ok());
    }
}
