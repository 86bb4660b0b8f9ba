//! Exec: a command in a named container of a pod, bounded by [`EXEC_TIMEOUT`], and its exit
//! code.

use super::Cluster;
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use std::time::Duration;

/// Longest a command run by exec may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// Output of a command run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Exit code (0 on success); `None` when the API did not report one.
    pub code: Option<i32>,
}

impl Cluster {
    /// Runs `command` in `container` of `pod` (the container is always named); gives up after
    /// [`EXEC_TIMEOUT`].
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        match tokio::time::timeout(
            EXEC_TIMEOUT,
            self.exec_unbounded(namespace, pod, container, command),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => bail!(
                "exec in {namespace}/{pod} container {container}: no answer within {}s",
                EXEC_TIMEOUT.as_secs()
            ),
        }
    }

    async fn exec_unbounded(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        use tokio::io::AsyncReadExt;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let ap = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut proc = pods
            .exec(
                pod,
                command.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &ap,
            )
            .await
            .with_context(|| format!("exec in {namespace}/{pod} container {container}"))?;
        let mut out = proc
            .stdout()
            .ok_or_else(|| anyhow!("exec: no stdout stream"))?;
        let mut err = proc
            .stderr()
            .ok_or_else(|| anyhow!("exec: no stderr stream"))?;
        let status = proc.take_status();
        let mut so = Vec::new();
        let mut se = Vec::new();
        let (r1, r2) = tokio::join!(out.read_to_end(&mut so), err.read_to_end(&mut se));
        r1?;
        r2?;
        let code = match status {
            Some(s) => s.await.map(|st| exit_code(&st)),
            None => None,
        };
        proc.join().await.context("exec session")?;
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&so).into(),
            stderr: String::from_utf8_lossy(&se).into(),
            code,
        })
    }
}

/// The exit code from an exec `Status`: 0 on Success, the `ExitCode` cause otherwise.
pub fn exit_code(st: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if st.status.as_deref() == Some("Success") {
        return 0;
    }
    st.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_ref())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}
