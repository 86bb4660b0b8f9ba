//! The rotation itself, whatever runs the gate: the four steps in order over a [`Backend`] (the
//! cluster's GitOps source, or the sandbox's Envoy), and the wait of step 3 with its rule, over an
//! injected [`Clock`] so that tests decide how time passes.
//!
//! The quiet rule, per proxy: the old token's count must stay the same for `--quiet-for`. A proxy
//! seen for the first time, or whose count changed (up: still in use; down: the proxy restarted and
//! its counters began again), starts its quiet period over. A proxy that could not be read is an
//! error, never "quiet": nothing is known about its clients. A proxy that is gone no longer
//! serves anyone and is forgotten.

use super::super::usage::{METRIC, human};
use crate::deploy::tokens::Entry;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// How time passes for the wait: a monotonic reading and a sleep.
pub trait Clock {
    /// Time since some fixed start.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration) -> impl Future<Output = ()>;
}

/// The real clock (tokio's, so a paused runtime would pause it too).
pub struct TokioClock(tokio::time::Instant);

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock that only moves when slept on: a test's whole wait runs in no real time.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::Mutex<Duration>);

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    async fn sleep(&self, d: Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }
}

/// One read of the old token's count on every proxy: pod → count, or why it could not be read.
pub type Counts = BTreeMap<String, Result<u64, String>>;

/// Where the wait stands after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every proxy's count has stood still for the quiet period.
    Quiet,
    /// These proxies (pod, time still to go) have not been still long enough.
    Waiting(Vec<(String, Duration)>),
}

/// The quiet rule's memory: each proxy's last count and since when it has stood still.
#[derive(Debug, Clone)]
pub struct Quiet {
    quiet_for: Duration,
    still_since: BTreeMap<String, (u64, Duration)>,
}

impl Quiet {
    pub fn new(quiet_for: Duration) -> Self {
        Quiet {
            quiet_for,
            still_since: BTreeMap::new(),
        }
    }

    /// Takes a read made at `now`. An unreadable proxy, or no proxy at all, is an error.
    pub fn observe(&mut self, now: Duration, counts: &Counts) -> Result<Verdict> {
        let unreadable: Vec<String> = counts
            .iter()
            .filter_map(|(pod, c)| c.as_ref().err().map(|e| format!("{pod}: {e}")))
            .collect();
        if !unreadable.is_empty() {
            bail!(
                "cannot tell whether the old token is still in use: {}",
                unreadable.join("; ")
            );
        }
        if counts.is_empty() {
            bail!("no proxy to watch: the gate selects no running pod");
        }
        self.still_since.retain(|pod, _| counts.contains_key(pod));
        let mut waiting = Vec::new();
        for (pod, count) in counts {
            let count = *count.as_ref().unwrap_or(&0);
            let since = match self.still_since.get(pod) {
                Some((seen, since)) if *seen == count => *since,
                _ => now,
            };
            self.still_since.insert(pod.clone(), (count, since));
            let still = now.saturating_sub(since);
            if still < self.quiet_for {
                waiting.push((pod.clone(), self.quiet_for - still));
            }
        }
        Ok(if waiting.is_empty() {
            Verdict::Quiet
        } else {
            Verdict::Waiting(waiting)
        })
    }
}

/// How step 3 waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub quiet_for: Duration,
    pub timeout: Duration,
    pub poll: Duration,
}

impl Wait {
    /// A read every tenth of the quiet period, between 1 s and 30 s: enough reads to see a
    /// client that calls now and then, few enough to spare the API server.
    pub fn poll_for(quiet_for: Duration) -> Duration {
        (quiet_for / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Quiet {
        waited: Duration,
    },
    /// `--timeout` passed with these proxies still not quiet.
    StillInUse(Vec<String>),
}

/// What reads the old token's count on every proxy.
pub trait CountReader {
    fn counts(&mut self) -> impl Future<Output = Result<Counts>>;
}

/// Reads until every proxy has been quiet for `w.quiet_for`, or `w.timeout` has passed. Prints a
/// line when the set of proxies still waited on changes (not on every read: the output stays
/// bounded however long the wait).
pub async fn wait_quiet(
    clock: &impl Clock,
    reader: &mut impl CountReader,
    w: Wait,
    out: &mut impl Write,
) -> Result<Outcome> {
    let start = clock.now();
    let mut rule = Quiet::new(w.quiet_for);
    let mut last: Option<Vec<String>> = None;
    loop {
        let counts = reader.counts().await?;
        let now = clock.now();
        match rule.observe(now, &counts)? {
            Verdict::Quiet => {
                return Ok(Outcome::Quiet {
                    waited: now - start,
                });
            }
            Verdict::Waiting(left) => {
                let pods: Vec<String> = left.iter().map(|(p, _)| p.clone()).collect();
                if last.as_ref() != Some(&pods) {
                    let longest = left.iter().map(|(_, d)| *d).max().unwrap_or_default();
                    writeln!(
                        out,
                        "   waiting on {} ({} to go if nothing moves)",
                        pods.join(", "),
                        human(longest)
                    )?;
                    out.flush()?;
                    last = Some(pods.clone());
                }
                if now - start >= w.timeout {
                    return Ok(Outcome::StillInUse(pods));
                }
            }
        }
        clock.sleep(w.poll).await;
    }
}

/// What runs the gate: each step of a rotation, as this target does it. Each step is done
/// only once: a backend that finds it done (a resumed rotation) says so and goes on.
pub trait Backend: CountReader {
    /// Step 1: the gate accepts the new token beside the old one.
    fn add(&mut self, out: &mut dyn Write) -> impl Future<Output = Result<()>>;
    /// Step 2: the client gets the new token.
    fn hand_over(&mut self, out: &mut dyn Write) -> impl Future<Output = Result<()>>;
    /// Step 4: the old entry leaves the gate; returns it (name and digest, never a token).
    fn remove(&mut self, out: &mut dyn Write) -> impl Future<Output = Result<Entry>>;
}

/// The names of a rotation, for the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub old: String,
    pub new: String,
}

/// Runs the steps in order: 0 when the old entry was removed; 1 when it was still in use at the
/// timeout (kept, and said so). An error at any step stops there, removing nothing.
pub async fn rotate(
    backend: &mut impl Backend,
    clock: &impl Clock,
    names: &Names,
    w: Wait,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let Names { old, new } = names;
    writeln!(out, "1. adding {new} beside {old}")?;
    backend.add(out).await?;
    writeln!(out, "2. handing {new} to {old}'s client")?;
    backend.hand_over(out).await?;
    writeln!(
        out,
        "3. waiting until {METRIC}{{token=\"{old}\"}} has not changed for {} on every proxy \
         (up to {})",
        human(w.quiet_for),
        human(w.timeout)
    )?;
    out.flush()?;
    match wait_quiet(clock, backend, w, out).await? {
        Outcome::Quiet { waited } => {
            writeln!(
                out,
                "   {old} unused for {} on every proxy (waited {})",
                human(w.quiet_for),
                human(waited)
            )?;
            writeln!(out, "4. removing {old}")?;
            let removed = backend.remove(out).await?;
            let until = removed
                .not_after
                .as_ref()
                .map(|t| format!(", not_after {t}"))
                .unwrap_or_default();
            writeln!(
                out,
                "removed: token {} (sha256 {}…{until}); {new} is the one in use",
                removed.name,
                &removed.sha256[..removed.sha256.len().min(12)]
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::StillInUse(pods) => {
            writeln!(
                out,
                "{old} is still in use after {} (its count moved within the last {} on {}): \
                 {old} is kept beside {new}; find its client with `istio-demo token usage`, then run \
                 this command again to resume the wait",
                human(w.timeout),
                human(w.quiet_for),
                pods.join(", ")
            )?;
            out.flush()?;
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn read(pairs: &[(&str, Result<u64, &str>)]) -> Counts {
        pairs
            .iter()
            .map(|(p, c)| (p.to_string(), c.map_err(str::to_string)))
            .collect()
    }

    #[test]
    fn quiet_only_once_every_proxy_stood_still_for_the_period() {
        let mut q = Quiet::new(secs(60));
        let both = |a, b| read(&[("a", Ok(a)), ("b", Ok(b))]);
        assert_eq!(
            q.observe(secs(0), &both(5, 9)).unwrap(),
            Verdict::Waiting(vec![("a".into(), secs(60)), ("b".into(), secs(60))])
        );
        // b moves at 30 s: its period starts again; a has 30 s left.
        assert_eq!(
            q.observe(secs(30), &both(5, 10)).unwrap(),
            Verdict::Waiting(vec![("a".into(), secs(30)), ("b".into(), secs(60))])
        );
        assert_eq!(
            q.observe(secs(60), &both(5, 10)).unwrap(),
            Verdict::Waiting(vec![("b".into(), secs(30))]),
            "a has been still for exactly 60 s: quiet; b not yet"
        );
        assert_eq!(q.observe(secs(90), &both(5, 10)).unwrap(), Verdict::Quiet);
    }

    #[test]
    fn a_restart_or_a_new_proxy_starts_over_and_a_gone_one_is_forgotten() {
        let mut q = Quiet::new(secs(60));
        q.observe(secs(0), &read(&[("a", Ok(5))])).unwrap();
        // The counter dropped: the proxy restarted, whatever used the token before may still.
        assert_eq!(
            q.observe(secs(60), &read(&[("a", Ok(0))])).unwrap(),
            Verdict::Waiting(vec![("a".into(), secs(60))])
        );
        // A new pod (a canary, a scale-up) gets its own full period.
        assert_eq!(
            q.observe(secs(120), &read(&[("a", Ok(0)), ("c", Ok(0))]))
                .unwrap(),
            Verdict::Waiting(vec![("c".into(), secs(60))])
        );
        // c goes away; a is quiet and alone.
        assert_eq!(
            q.observe(secs(121), &read(&[("a", Ok(0))])).unwrap(),
            Verdict::Quiet
        );
    }

    #[test]
    fn an_unreadable_proxy_or_none_at_all_is_an_error_not_quiet() {
        let mut q = Quiet::new(secs(60));
        q.observe(secs(0), &read(&[("a", Ok(1)), ("b", Ok(1))]))
            .unwrap();
        let e = q
            .observe(secs(600), &read(&[("a", Ok(1)), ("b", Err("503"))]))
            .unwrap_err();
        assert!(e.to_string().contains("b: 503"), "{e}");
        let e = q.observe(secs(600), &Counts::new()).unwrap_err();
        assert!(e.to_string().contains("no proxy"), "{e}");
    }

    /// Replays one read per poll from a script.
    struct Script(std::vec::IntoIter<Counts>);
    impl CountReader for Script {
        async fn counts(&mut self) -> Result<Counts> {
            Ok(self
                .0
                .next()
                .expect("the wait read more often than scripted"))
        }
    }

    fn wait(quiet: u64, timeout: u64, poll: u64) -> Wait {
        Wait {
            quiet_for: secs(quiet),
            timeout: secs(timeout),
            poll: secs(poll),
        }
    }

    #[tokio::test]
    async fn the_wait_ends_quiet_or_at_the_timeout_in_fake_time() {
        let clock = ManualClock::default();
        let reads: Vec<Counts> = [3, 4, 4, 4, 4]
            .iter()
            .map(|n| read(&[("a", Ok(*n))]))
            .collect();
        let mut out = Vec::new();
        let o = wait_quiet(
            &clock,
            &mut Script(reads.into_iter()),
            wait(20, 600, 10),
            &mut out,
        )
        .await
        .unwrap();
        // Still from 10 s on; quiet at the read of 30 s.
        assert_eq!(o, Outcome::Quiet { waited: secs(30) });
        assert_eq!(clock.now(), secs(30));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "one line per change: {text}");

        // Moving on every read: still in use once the timeout has passed, and no read after it.
        let clock = ManualClock::default();
        let reads: Vec<Counts> = (0..7).map(|n| read(&[("a", Ok(n))])).collect();
        let o = wait_quiet(
            &clock,
            &mut Script(reads.into_iter()),
            wait(20, 60, 10),
            &mut Vec::new(),
        )
        .await
        .unwrap();
        assert_eq!(o, Outcome::StillInUse(vec!["a".into()]));
        assert_eq!(clock.now(), secs(60));
    }

    #[test]
    fn polls_are_a_tenth_of_the_period_within_bounds() {
        assert_eq!(Wait::poll_for(secs(600)), secs(30));
        assert_eq!(Wait::poll_for(secs(100)), secs(10));
        assert_eq!(Wait::poll_for(secs(3)), secs(1));
    }
}
