//! httpbin under gunicorn: the upstream every Envoy of the harness proxies to, and the log of
//! what reached it.

use crate::process::Managed;
use crate::{POLL, READY_TIMEOUT, http1, loopback, poll_until};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// httpbin served by gunicorn on 127.0.0.1.
#[derive(Debug)]
pub struct Httpbin {
    pub process: Managed,
    pub addr: SocketAddr,
    /// gunicorn's access log: one `METHOD PATH STATUS` line per request httpbin served.
    pub access_log: PathBuf,
}

impl Httpbin {
    /// Starts httpbin on a kernel-picked port (gunicorn binds port 0 and logs the port it got)
    /// and waits until `/status/200` answers.
    pub fn start(gunicorn: &Path, dir: &Path) -> Result<Self, String> {
        let access_log = dir.join("httpbin-access.log");
        let mut cmd = Command::new(gunicorn);
        cmd.args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--threads",
            "4",
            "--access-logfile",
        ])
        .arg(&access_log)
        .args(["--access-logformat", "%(m)s %(U)s %(s)s", "httpbin:app"]);
        let mut process = Managed::spawn("httpbin", cmd, &dir.join("httpbin.log"))?;
        let port = poll_until(&mut process, READY_TIMEOUT, "gunicorn to listen", |p| {
            let log = p.log_text();
            let rest = log.split("Listening at: http://127.0.0.1:").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u16>()
                .ok()
        })?;
        let addr = loopback(port);
        poll_until(&mut process, READY_TIMEOUT, "httpbin /status/200", |_| {
            http1::Request::get("/status/200")
                .send(addr)
                .ok()
                .filter(|r| r.status == 200)
        })?;
        Ok(Httpbin {
            process,
            addr,
            access_log,
        })
    }

    /// The request paths httpbin has served so far (readiness probes included), in the order
    /// gunicorn logged them.
    ///
    /// gunicorn writes a request's access-log line only after it has sent the response, so a
    /// client can hold a response whose line is not in the file yet. This sends a marker request
    /// of its own straight to httpbin and reads the log once the marker's line is there. A request
    /// answered before the call has had its line written by then unless its gunicorn thread was
    /// descheduled between sending and logging for the whole marker round trip (gunicorn logs in
    /// the same thread right after the send; there is no stronger ordering to wait on without
    /// changing httpbin). Marker lines are left out.
    pub fn served_paths(&self) -> Result<Vec<String>, String> {
        static MARKERS: AtomicU64 = AtomicU64::new(0);
        let marker = format!(
            "{SYNC_PREFIX}{}-{}",
            std::process::id(),
            MARKERS.fetch_add(1, Ordering::Relaxed)
        );
        let answer = http1::Request::get(&marker)
            .send(self.addr)
            .map_err(|e| format!("httpbin marker request {marker}: {e}"))?;
        if answer.status != 200 {
            return Err(format!(
                "httpbin marker request {marker}: status {}",
                answer.status
            ));
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let paths: Vec<String> = log
                .lines()
                .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
                .collect();
            if paths.contains(&marker) {
                return Ok(paths
                    .into_iter()
                    .filter(|p| !p.starts_with(SYNC_PREFIX))
                    .collect());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "httpbin answered {marker} but did not log it within {}s",
                    READY_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Where [`Httpbin::served_paths`] sends its markers (httpbin's `/anything/` answers any path).
const SYNC_PREFIX: &str = "/anything/harness-log-sync-";
