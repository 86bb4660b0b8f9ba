//! `istio-demo verify`: run each scenario of the tutorial against the live cluster, by exec into
//! the sleep and fortio pods (always naming the container), and print PASS/FAIL with the evidence.
//!
//! The parsing of what the commands print is plain functions over text, tested with canned outputs.

mod parse;
pub mod rollback;

pub use parse::*;

use crate::cluster::{self, Cluster, KubeArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

/// Where the sleep pod mounts the demo token (Secret `rfma-demo-token`, key `token`).
pub const TOKEN_PATH: &str = "/var/run/secrets/rfma/token";

#[derive(Debug, Clone, Args)]
#[command(
    about = "Run the tutorial's scenarios against the live cluster and print PASS/FAIL with evidence",
    long_about = "Runs each scenario by exec into the sleep and fortio pods (always naming the container) and \
prints PASS or FAIL with the evidence: token gate (no token 401, wrong token 403, right token 200, and the \
filter's record in the httpbin sidecar's log), timeout (/delay/2 answered 504 within the 1 s timeout), retries \
on 500 (the sleep sidecar's upstream_rq_retry counter grows), circuit breaking (fortio with 3 connections gets \
some 503 and the fortio sidecar's upstream_rq_pending_overflow is above zero), the active authorization stage, \
and the filter's metrics on port 15090. The right token is read inside the sleep pod from the Secret \
rfma-demo-token mounted at /var/run/secrets/rfma/token; it never leaves the cluster. Exits 1 if any scenario fails."
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the demo.
    #[arg(long, default_value = "demo")]
    pub namespace: String,
    /// Base URL of httpbin as seen from the sleep and fortio pods.
    #[arg(long, default_value = "http://httpbin.demo:8000")]
    pub url: String,
    /// Label selector of the sleep pod.
    #[arg(long, default_value = "app=sleep")]
    pub sleep_selector: String,
    /// Container of the sleep pod that has curl.
    #[arg(long, default_value = "sleep")]
    pub sleep_container: String,
    /// Label selector of the fortio pod.
    #[arg(long, default_value = "app=fortio")]
    pub fortio_selector: String,
    /// Container of the fortio pod.
    #[arg(long, default_value = "fortio")]
    pub fortio_container: String,
    /// Label selector of the gated httpbin pods (primary and canary).
    #[arg(long, default_value = "istio-demo.dev/token-gate=enabled")]
    pub httpbin_selector: String,
    /// Also prove that a canary whose gate rejects the load tester is rolled back: breaks the load
    /// tester's token, starts a canary, waits for Flagger's rollback, then restores both (minutes).
    #[arg(long)]
    pub canary_rollback: bool,
    /// Timeout of each canary wait of --canary-rollback.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = cluster::parse_duration)]
    pub canary_timeout: std::time::Duration,
}

/// The sidecar's container name.
pub const PROXY: &str = "istio-proxy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub verdict: Verdict,
    pub evidence: Vec<String>,
}

impl Outcome {
    fn new(name: &'static str) -> Self {
        Outcome {
            name,
            verdict: Verdict::Pass,
            evidence: Vec::new(),
        }
    }
    fn check(&mut self, ok: bool, evidence: String) {
        if !ok {
            self.verdict = Verdict::Fail;
        }
        self.evidence.push(evidence);
    }
    fn fail(name: &'static str, why: String) -> Self {
        Outcome {
            name,
            verdict: Verdict::Fail,
            evidence: vec![why],
        }
    }
}

/// Pods found for the scenarios.
#[derive(Debug, Clone)]
pub struct Pods {
    pub sleep: String,
    pub fortio: Option<String>,
    pub httpbin: Vec<(String, Option<String>)>,
}

/// The running pods (not being deleted) matching `selector` in `ns`: name and IP.
pub async fn running_pods(
    cluster: &Cluster,
    ns: &str,
    selector: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing pods {selector} in {ns}"))?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|p| Some((p.metadata.name?, p.status.and_then(|s| s.pod_ip))))
        .collect())
}

/// Finds the sleep, fortio and httpbin pods.
pub async fn find_pods(cluster: &Cluster, args: &VerifyArgs) -> Result<Pods> {
    let sleep = running_pods(cluster, &args.namespace, &args.sleep_selector).await?;
    let Some((sleep, _)) = sleep.into_iter().next() else {
        bail!(
            "no running pod matches {} in namespace {} (is the demo up? see `istio-demo status`)",
            args.sleep_selector,
            args.namespace
        );
    };
    let fortio = running_pods(cluster, &args.namespace, &args.fortio_selector)
        .await?
        .into_iter()
        .next()
        .map(|p| p.0);
    let httpbin = running_pods(cluster, &args.namespace, &args.httpbin_selector).await?;
    Ok(Pods {
        sleep,
        fortio,
        httpbin,
    })
}

fn request_id(tag: &str) -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    format!(
        "istio-demo-verify-{tag}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// A curl command in the sleep container printing `code time`.
fn curl(url: &str, extra: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{time_total}",
        "--max-time",
        "10",
    ]
    .map(String::from)
    .to_vec();
    c.extend(extra.iter().map(|s| s.to_string()));
    c.push(url.to_string());
    c
}

/// The same, sending the token read from the mounted Secret (the token never leaves the pod).
fn curl_with_token(url: &str, extra: &str) -> Vec<String> {
    let script = format!(
        "test -s {TOKEN_PATH} || {{ echo 'no token at {TOKEN_PATH}: create the Secret rfma-demo-token (see docs/gitops.md)' >&2; exit 3; }}; \
         curl -sS -o /dev/null -w '%{{http_code}} %{{time_total}}' --max-time 10 -H \"x-rfma-token: $(cat {TOKEN_PATH})\" {extra} '{url}'"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// Context shared by the scenarios.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub args: &'a VerifyArgs,
    pub pods: Pods,
}

impl Ctx<'_> {
    async fn exec(
        &self,
        pod: &str,
        container: &str,
        cmd: Vec<String>,
    ) -> Result<cluster::ExecOutput> {
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        self.cluster
            .exec(&self.args.namespace, pod, container, &refs)
            .await
    }
    async fn sleep_curl(&self, cmd: Vec<String>) -> Result<(u16, f64)> {
        let out = self
            .exec(&self.pods.sleep, &self.args.sleep_container, cmd)
            .await?;
        parse_code_time(&out.stdout).with_context(|| {
            format!(
                "curl printed {:?} (stderr {:?})",
                out.stdout.trim(),
                out.stderr.trim()
            )
        })
    }
    fn hosts(&self) -> Vec<String> {
        canary_hosts(&self.host())
    }
    fn host(&self) -> String {
        let h = self.args.url.split("://").nth(1).unwrap_or(&self.args.url);
        let h = h.split(['/', ':']).next().unwrap_or(h);
        // httpbin.demo -> httpbin.demo.svc.cluster.local, as Envoy names the cluster.
        if h.ends_with(".cluster.local") {
            h.to_string()
        } else {
            format!("{h}.svc.cluster.local")
        }
    }
    async fn proxy_stats(&self, pod: &str) -> Result<String> {
        let cmd = ["pilot-agent", "request", "GET", "stats"]
            .map(String::from)
            .to_vec();
        Ok(self.exec(pod, PROXY, cmd).await?.stdout)
    }
}

pub async fn token_gate(ctx: &Ctx<'_>) -> Outcome {
    let mut o = Outcome::new("token gate");
    let url = format!("{}/headers", ctx.args.url);
    let none_id = request_id("none");
    match ctx
        .sleep_curl(curl(&url, &["-H", &format!("x-request-id: {none_id}")]))
        .await
    {
        Ok((c, _)) => o.check(c == 401, format!("no token: {c} (want 401)")),
        Err(e) => o.check(false, format!("no token: {e:#}")),
    }
    match ctx
        .sleep_curl(curl(
            &url,
            &["-H", "x-rfma-token: istio-demo-verify-wrong-token"],
        ))
        .await
    {
        Ok((c, _)) => o.check(c == 403, format!("wrong token: {c} (want 403)")),
        Err(e) => o.check(false, format!("wrong token: {e:#}")),
    }
    let id = request_id("allow");
    match ctx
        .sleep_curl(curl_with_token(&url, &format!("-H 'x-request-id: {id}'")))
        .await
    {
        Ok((c, _)) => o.check(c == 200, format!("right token: {c} (want 200)")),
        Err(e) => o.check(false, format!("right token: {e:#}")),
    }
    // The record of the allowed request, in one of the httpbin sidecars' logs.
    let api: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), &ctx.args.namespace);
    let lp = LogParams {
        container: Some(PROXY.into()),
        since_seconds: Some(600),
        ..Default::default()
    };
    let mut found = None;
    for (pod, _) in &ctx.pods.httpbin {
        if let Ok(log) = api.logs(pod, &lp).await
            && let Some(r) = find_record(&log, &id)
        {
            found = Some((pod.clone(), r));
            break;
        }
    }
    match found {
        Some((pod, r)) => {
            let decision = r
                .pointer("/rfma/decision")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let name = r
                .pointer("/rfma/token/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            o.check(
                decision == "allow",
                format!("record in {pod}/{PROXY}: decision {decision}, token {name}"),
            );
        }
        None => o.check(
            false,
            format!("no access record with http.request.id {id} in the httpbin sidecars' logs"),
        ),
    }
    o
}

pub async fn timeout(ctx: &Ctx<'_>) -> Outcome {
    let mut o = Outcome::new("timeout");
    match ctx
        .sleep_curl(curl_with_token(&format!("{}/delay/2", ctx.args.url), ""))
        .await
    {
        Ok((c, t)) => o.check(
            c == 504 && t < 1.9,
            format!("/delay/2: {c} after {t:.2}s (want 504 within the 1 s timeout)"),
        ),
        Err(e) => o.check(false, format!("/delay/2: {e:#}")),
    }
    o
}

pub async fn retries(ctx: &Ctx<'_>) -> Outcome {
    let mut o = Outcome::new("retries on 500");
    let hosts = ctx.hosts();
    let before = match ctx.proxy_stats(&ctx.pods.sleep).await {
        Ok(s) => parse_stat(&s, &hosts, "upstream_rq_retry").unwrap_or(0),
        Err(e) => {
            return Outcome::fail(o.name, format!("reading the sleep sidecar's stats: {e:#}"));
        }
    };
    match ctx
        .sleep_curl(curl_with_token(&format!("{}/status/500", ctx.args.url), ""))
        .await
    {
        Ok((c, _)) => o.check(c == 500, format!("/status/500: {c}")),
        Err(e) => o.check(false, format!("/status/500: {e:#}")),
    }
    match ctx.proxy_stats(&ctx.pods.sleep).await {
        Ok(s) => {
            let after = parse_stat(&s, &hosts, "upstream_rq_retry").unwrap_or(0);
            o.check(
                after > before,
                format!("upstream_rq_retry {before} -> {after} (want it to grow)"),
            );
        }
        Err(e) => o.check(false, format!("reading the sleep sidecar's stats: {e:#}")),
    }
    o
}

pub async fn circuit_breaking(ctx: &Ctx<'_>) -> Outcome {
    let name = "circuit breaking";
    let Some(fortio) = ctx.pods.fortio.clone() else {
        return Outcome::fail(
            name,
            format!("no running pod matches {}", ctx.args.fortio_selector),
        );
    };
    let mut o = Outcome::new(name);
    // /status/200 passes the gate without a token (bypass rule); the 503s come from the circuit
    // breaker in fortio's own sidecar (the Canary's connection pool), before a request leaves the pod.
    let mut cmd = [
        "fortio",
        "load",
        "-c",
        "3",
        "-qps",
        "0",
        "-n",
        "30",
        "-loglevel",
        "Warning",
    ]
    .map(String::from)
    .to_vec();
    cmd.push(format!("{}/status/200", ctx.args.url));
    match ctx.exec(&fortio, &ctx.args.fortio_container, cmd).await {
        Ok(out) => {
            let codes = parse_fortio_codes(&format!("{}\n{}", out.stdout, out.stderr));
            let n503 = codes.get(&503).copied().unwrap_or(0);
            o.check(
                n503 > 0,
                format!("fortio -c 3 -n 30: codes {codes:?} (want some 503)"),
            );
        }
        Err(e) => o.check(false, format!("fortio load: {e:#}")),
    }
    match ctx.proxy_stats(&fortio).await {
        Ok(s) => {
            let overflow =
                parse_stat(&s, &ctx.hosts(), "upstream_rq_pending_overflow").unwrap_or(0);
            o.check(
                overflow > 0,
                format!("fortio sidecar upstream_rq_pending_overflow {overflow} (want > 0)"),
            );
        }
        Err(e) => o.check(false, format!("reading the fortio sidecar's stats: {e:#}")),
    }
    o
}

pub async fn authorization(ctx: &Ctx<'_>) -> Outcome {
    let mut o = Outcome::new("authorization");
    let policies = match ctx
        .cluster
        .list(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            Some(&ctx.args.namespace),
            None,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return Outcome::fail(o.name, format!("listing AuthorizationPolicies: {e:#}")),
    };
    let stage = authz_stage(&policies, &ctx.args.namespace);
    o.evidence.push(format!(
        "policies: {}",
        if stage.names.is_empty() {
            "none".into()
        } else {
            stage.names.join(", ")
        }
    ));
    let get_allowed = !stage.default_deny || stage.allows_namespace;
    let want_get = if get_allowed { 200 } else { 403 };
    match ctx
        .sleep_curl(curl_with_token(&format!("{}/get", ctx.args.url), ""))
        .await
    {
        Ok((c, _)) => o.check(
            c == want_get,
            format!("GET from {}: {c} (want {want_get})", ctx.args.namespace),
        ),
        Err(e) => o.check(false, format!("GET: {e:#}")),
    }
    if let Some(methods) = &stage.methods
        && !methods.iter().any(|m| m == "POST")
    {
        match ctx
            .sleep_curl(curl_with_token(
                &format!("{}/post", ctx.args.url),
                "-X POST",
            ))
            .await
        {
            Ok((c, _)) => o.check(
                c == 403,
                format!("POST (only {} allowed): {c} (want 403)", methods.join(",")),
            ),
            Err(e) => o.check(false, format!("POST: {e:#}")),
        }
    }
    o
}

pub async fn metrics(ctx: &Ctx<'_>) -> Outcome {
    let mut o = Outcome::new("metrics on 15090");
    let Some((pod, Some(ip))) = ctx.pods.httpbin.first().cloned() else {
        return Outcome::fail(
            o.name,
            format!(
                "no running httpbin pod with an IP matches {}",
                ctx.args.httpbin_selector
            ),
        );
    };
    let cmd = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        &format!("http://{ip}:15090/stats/prometheus"),
    ]
    .map(String::from)
    .to_vec();
    match ctx
        .exec(&ctx.pods.sleep, &ctx.args.sleep_container, cmd)
        .await
    {
        Ok(out) => {
            let have: Vec<&str> = ["rfma_allowed_total", "rfma_denied_missing_token_total"]
                .into_iter()
                .filter(|m| prometheus_has(&out.stdout, m))
                .collect();
            o.check(
                have.len() == 2,
                format!("{pod} {ip}:15090/stats/prometheus exports {have:?}"),
            );
        }
        Err(e) => o.check(false, format!("{ip}:15090: {e:#}")),
    }
    o
}

/// Prints one line per scenario; returns whether all passed.
pub fn report(outcomes: &[Outcome], out: &mut impl Write) -> std::io::Result<bool> {
    for o in outcomes {
        let v = if o.verdict == Verdict::Pass {
            "PASS"
        } else {
            "FAIL"
        };
        writeln!(out, "{v}  {:<18} {}", o.name, o.evidence.join("; "))?;
    }
    let passed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Pass)
        .count();
    writeln!(
        out,
        "verify: {passed} of {} scenarios passed",
        outcomes.len()
    )?;
    Ok(passed == outcomes.len())
}

/// Runs every scenario.
pub async fn run_with(cluster: &Cluster, args: &VerifyArgs, out: &mut impl Write) -> Result<bool> {
    let pods = find_pods(cluster, args).await?;
    let ctx = Ctx {
        cluster,
        args,
        pods,
    };
    let mut outcomes = vec![
        token_gate(&ctx).await,
        timeout(&ctx).await,
        retries(&ctx).await,
        circuit_breaking(&ctx).await,
        authorization(&ctx).await,
        metrics(&ctx).await,
    ];
    if args.canary_rollback {
        outcomes
            .push(rollback::canary_rollback(cluster, &args.namespace, args.canary_timeout).await);
    }
    Ok(report(&outcomes, out)?)
}

/// Entry point from `main`.
pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::new(args.kube.client().await?, false);
        let stdout = std::io::stdout();
        if !run_with(&cluster, args, &mut stdout.lock()).await? {
            bail!("some scenarios failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}
