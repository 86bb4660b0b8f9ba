//! Child processes that stop with their owner: each runs in its own process group (so a
//! terminal's Ctrl-C reaches only us, and we stop the whole group, gunicorn's workers too),
//! with stdout and stderr in a log file. Dropping a [`Managed`] sends SIGTERM to the group,
//! waits a bounded time for it to exit, then SIGKILLs it. If the owner dies without dropping
//! it (SIGKILL), the kernel kills the child (`PR_SET_PDEATHSIG`); that signal follows the
//! *thread* that spawned the child, so spawn from a thread that outlives the child.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a child gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A supervised child process.
#[derive(Debug)]
pub struct Managed {
    name: &'static str,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Managed {
    /// Starts `command` in a new process group, its output appended to `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Result<Self, String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // If we die without running Drop (SIGKILL, abort), the kernel kills the child for us.
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({program}): {e}"))?;
        Ok(Managed {
            name,
            child,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file holding the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the child has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `max_bytes` of the child's output.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let Ok(mut f) = File::open(&self.log) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// `Some(status)` once the child has exited (without blocking).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A one-line account of why the child is gone, with the tail of its output.
    pub fn death_report(&mut self) -> Option<String> {
        let status = self.exited()?;
        let tail = self.log_tail(2000);
        let tail = tail.trim_end();
        Some(format!(
            "{} (pid {}) {}{}",
            self.name,
            self.child.id(),
            describe(status),
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its last output:\n{tail}")
            }
        ))
    }

    /// Stops the whole process group: SIGTERM, a bounded wait, then SIGKILL.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let group = self.child.id() as libc::pid_t;
        if self.exited().is_none() {
            signal_group(group, libc::SIGTERM);
            if self.wait_exit(TERM_GRACE).is_none() {
                signal_group(group, libc::SIGKILL);
                self.exited = self.child.wait().ok();
            }
        }
        // Whatever the leader did, leave no worker of its group behind.
        signal_group(group, libc::SIGKILL);
        self.exited
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
    // An error (ESRCH: the group is already gone) needs no handling.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// "exited with status 1" or "was killed by signal 9 (SIGKILL)".
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => format!("was killed by signal {sig}{}", signal_name(sig)),
        None => format!("ended ({status})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut cmd = Command::new("sh");
        // The grandchild records its pid, then both wait forever.
        cmd.arg("-c")
            .arg(format!("sleep 300 & echo $! > {}; wait", pidfile.display()));
        let mut child = Managed::spawn("sh", cmd, &dir.path().join("log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the grandchild never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(child.exited().is_none());
        drop(child);
        // Dead means gone, or a zombie waiting for init to reap it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            if stat.is_empty() || state == Some('Z') {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the grandchild outlived its supervisor: {stat}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn death_report_names_the_child_and_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo 'bind: address in use' >&2; exit 3");
        let mut child = Managed::spawn("httpbin", cmd, &dir.path().join("log")).unwrap();
        assert!(child.wait_exit(Duration::from_secs(10)).is_some());
        let report = child.death_report().unwrap();
        assert!(report.starts_with("httpbin (pid "), "{report}");
        assert!(report.contains("exited with status 3"), "{report}");
        assert!(report.contains("bind: address in use"), "{report}");
    }
}
