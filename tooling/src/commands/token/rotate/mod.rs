//! `istio-demo token rotate NAME`: replacing a token without downtime (issue #15). 1. add a new
//! token beside NAME in the gate's configuration (NAME stays valid, until `now + --overlap` if
//! given); 2. hand the new token to NAME's client; 3. wait until NAME's `rfma_token_allowed_total`
//! has not moved for `--quiet-for` on every proxy the gate selects (giving up after `--timeout`,
//! keeping NAME, exit 1); 4. remove NAME and print what was removed.
//!
//! This module holds the arguments, the `--dry-run` plan (reads only) and the wiring; the steps
//! and the wait are in [`engine`], the targets in [`cluster`] (the GitOps source Flux deploys
//! from) and [`sandbox`] (the local Envoy of `istio-demo sandbox`).

pub mod cluster;
pub mod engine;
pub mod sandbox;

use super::usage::{self, Gate, METRIC, human};
use crate::cluster::{Cluster, KubeArgs, parse_duration, runtime};
use crate::deploy::registry::Access;
use crate::deploy::tokens::{self, Step, Token};
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// The configured token to replace.
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the gate (its WasmPlugin or TrafficExtension) and of the pods it selects.
    #[arg(long, default_value = "demo")]
    pub namespace: String,
    /// Name of the new entry (default: NAME-r2, or the next -rN when NAME already ends in one).
    #[arg(long, value_name = "NAME")]
    pub new_name: Option<String>,
    /// Keep NAME valid this long after the new token is added (its not_after); without it, NAME
    /// stays valid until it is removed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub overlap: Option<Duration>,
    /// How long NAME's counter must stay unchanged on every proxy before NAME is removed.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub quiet_for: Duration,
    /// Give up waiting for the quiet period after this long (NAME is kept, exit 1).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the plan, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The repository holding flux/ and the manifest directories, rendered again as `up` renders
    /// them (default: found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Rotate in the running `istio-demo sandbox` (no cluster) instead.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: the sandbox's state directory (default: $ISTIO_DEMO_STATE_DIR, else the
    /// sandbox's own default).
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub state_dir: Option<PathBuf>,
}

/// `NAME-r2`, or `base-r<N+1>` for `base-rN`.
pub fn next_name(name: &str) -> String {
    if let Some((base, n)) = name.rsplit_once("-r")
        && !base.is_empty()
        && !n.is_empty()
        && !n.starts_with('0')
        && let Ok(n) = n.parse::<u32>()
    {
        return format!("{base}-r{}", n.saturating_add(1));
    }
    format!("{name}-r2")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One proxy as the plan sees it: NAME's count now, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub pod: String,
    pub count: Result<u64, String>,
    /// The newest record naming NAME within `--quiet-for`, if any.
    pub last_seen: Option<String>,
}

/// What the rotation would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub new_name: String,
    /// `WasmPlugin/demo/rfma-token-gate`.
    pub gate: String,
    pub principals: Vec<String>,
    /// NAME's `not_after` and the `--overlap` it comes from.
    pub not_after: Option<(String, Duration)>,
    /// The demo Secret of NAME: namespace/name and who reads it.
    pub secret: Option<(String, &'static str)>,
    pub quiet_for: Duration,
    pub timeout: Duration,
    pub proxies: Vec<Watched>,
    /// The step a rotation of NAME under way has reached (its Secret's record), if one is.
    pub under_way: Option<Step>,
}

/// The plan for rotating `args.name` in `gate`, at `now` (seconds since the epoch). `demo` is
/// the demo token Secret's token that NAME is (by its current name, or as a rotation's old
/// entry), when the cluster has one.
pub fn plan(
    args: &RotateArgs,
    gate: &Gate,
    ns: &str,
    now: u64,
    proxies: Vec<Watched>,
    demo: Option<&Token>,
) -> Result<Plan> {
    let record = demo
        .and_then(|t| t.rotation.as_ref())
        .filter(|r| r.old.name == args.name);
    let new_name = match record {
        Some(r) => r.new.name.clone(),
        None => args
            .new_name
            .clone()
            .unwrap_or_else(|| next_name(&args.name)),
    };
    super::check_name(&new_name)?;
    if record.is_none() && gate.tokens.contains(&new_name) {
        bail!(
            "token {new_name} is already configured in {ns}/{}: pass another --new-name",
            gate.id
        );
    }
    let spec = demo
        .map(|t| t.spec)
        .or_else(|| tokens::find(&args.name).ok().copied());
    let secret = spec.map(|t| (format!("{}/{}", t.namespace, t.secret), t.used_by));
    Ok(Plan {
        name: args.name.clone(),
        new_name,
        gate: gate.id.replacen('/', &format!("/{ns}/"), 1),
        principals: gate.principals.get(&args.name).cloned().unwrap_or_default(),
        not_after: args
            .overlap
            .map(|o| (rfc3339(now.saturating_add(o.as_secs())), o)),
        secret,
        quiet_for: args.quiet_for,
        timeout: args.timeout,
        proxies,
        under_way: record.map(|r| r.step),
    })
}

/// Prints the plan, step by step.
pub fn print_plan(p: &Plan, out: &mut impl Write) -> std::io::Result<()> {
    let Plan {
        name,
        new_name,
        gate,
        ..
    } = p;
    writeln!(
        out,
        "token rotate {name}: the plan (dry run: nothing is changed)"
    )?;
    if let Some(step) = p.under_way {
        let done = match step {
            Step::Added => "step 1 is done",
            Step::Switched => "steps 1 and 2 are done",
        };
        writeln!(
            out,
            "a rotation of {name} to {new_name} is under way ({done}): without --dry-run it resumes there"
        )?;
    }
    let principals = if p.principals.is_empty() {
        format!("no principal restriction, as {name}")
    } else {
        format!(
            "principals {} (copied from {name})",
            p.principals.join(", ")
        )
    };
    let validity = match &p.not_after {
        Some((t, o)) => format!(
            "{name} stays valid until {t} (its not_after: now + --overlap {})",
            human(*o)
        ),
        None => format!("{name} stays valid, with no end, until step 4 removes it"),
    };
    writeln!(
        out,
        "1. add token {new_name} beside {name} in {gate}: a new 256-bit random token, only its SHA-256 \
         in the configuration; {principals}; {validity}"
    )?;
    match &p.secret {
        Some((secret, used_by)) => writeln!(
            out,
            "2. write the new token to Secret {secret} (key {}), which {used_by} reads",
            tokens::SECRET_KEY
        )?,
        None => writeln!(
            out,
            "2. no Secret is known for {name} (not a demo token): hand the new token to its client \
             (`istio-demo token new` prints a token once)"
        )?,
    }
    writeln!(
        out,
        "3. wait until {METRIC}{{token=\"{name}\"}} has not changed for {} on every proxy of {gate}, \
         giving up after {} (then {name} is kept and the command exits 1):",
        human(p.quiet_for),
        human(p.timeout)
    )?;
    for w in &p.proxies {
        let count = match &w.count {
            Ok(n) => format!("{n} allowed now"),
            Err(e) => format!("count not read now ({e})"),
        };
        let seen = match &w.last_seen {
            Some(t) => format!("last seen {t}"),
            None => format!("not seen in the last {}", human(p.quiet_for)),
        };
        writeln!(out, "   {}: {count}, {seen}", w.pod)?;
    }
    writeln!(
        out,
        "4. remove {name} from {gate} and print what was removed"
    )?;
    if let Some((_, o)) = &p.not_after
        && *o < p.quiet_for
    {
        writeln!(
            out,
            "note: --overlap {} is shorter than --quiet-for {}: clients still on {name} are refused \
             (expired_token) before the wait can end",
            human(*o),
            human(p.quiet_for)
        )?;
    }
    Ok(())
}

/// `token rotate --dry-run` against `cluster` at `now`: reads the gate and its proxies, prints
/// the plan; sends only GETs.
pub async fn plan_with(
    cluster: &Cluster,
    args: &RotateArgs,
    now: u64,
    out: &mut impl Write,
) -> Result<ExitCode> {
    super::check_name(&args.name)?;
    let ns = &args.namespace;
    let gates = usage::gates(cluster, ns).await?;
    let Some(gate) = gates
        .iter()
        .find(|g| g.tokens.contains(&args.name))
        .cloned()
    else {
        let configured: Vec<&str> = gates
            .iter()
            .flat_map(|g| g.tokens.iter().map(String::as_str))
            .collect();
        bail!(
            "token {} is not configured in namespace {ns} (configured: {})",
            args.name,
            if configured.is_empty() {
                "none".to_string()
            } else {
                configured.join(", ")
            }
        );
    };
    let u = usage::collect_from(cluster, ns, vec![gate.clone()], args.quiet_for).await?;
    let proxies = u
        .proxies
        .into_iter()
        .map(|p| {
            let t = p.tokens.iter().find(|t| t.name == args.name);
            Watched {
                count: match (&p.stats_error, t.and_then(|t| t.allowed)) {
                    (None, Some(n)) => Ok(n),
                    (Some(e), _) => Err(e.clone()),
                    (None, None) => Err("no count".into()),
                },
                last_seen: t
                    .and_then(|t| t.last_seen.as_ref())
                    .map(|s| format!("{} ({})", s.at, s.decision)),
                pod: p.pod,
            }
        })
        .collect();
    let demo = demo_token(cluster, &args.name).await;
    print_plan(&plan(args, &gate, ns, now, proxies, demo.as_ref())?, out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The demo token Secret's token that `name` is, by its current name or as the old entry of a
/// rotation under way. Only a plan uses it: a Secret it may not read leaves the plan to the slot
/// names (`None`), it does not stop it.
async fn demo_token(cluster: &Cluster, name: &str) -> Option<Token> {
    for spec in tokens::DEMO_TOKENS {
        let Ok(Some(secret)) = cluster
            .get("v1", "Secret", Some(spec.namespace), spec.secret)
            .await
        else {
            continue;
        };
        if let Ok(Some(t)) = tokens::from_secret(*spec, &secret)
            && (t.name == name || t.rotation.as_ref().is_some_and(|r| r.old.name == name))
        {
            return Some(t);
        }
    }
    None
}

/// How step 3 waits for these arguments, reading every `poll`.
pub fn wait_of(args: &RotateArgs, poll: Duration) -> engine::Wait {
    engine::Wait {
        quiet_for: args.quiet_for,
        timeout: args.timeout,
        poll,
    }
}

/// `token rotate` against `cluster` (OCI source), with the manifests of `repo`, the registry
/// reached through `access`, time from `clock` and a read of the proxies every `poll`: the plan
/// with `--dry-run`, else the rotation. Exit 1 when NAME was still in use at `--timeout`.
pub async fn run_with(
    cluster: &Cluster,
    args: &RotateArgs,
    repo: &Path,
    access: Access,
    clock: &impl engine::Clock,
    poll: Duration,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if args.dry_run {
        return plan_with(cluster, args, now, out).await;
    }
    super::check_name(&args.name)?;
    let mut backend =
        cluster::ClusterRotation::open(cluster, args, repo.to_path_buf(), access, now).await?;
    let names = engine::Names {
        old: backend.old.clone(),
        new: backend.new.clone(),
    };
    writeln!(
        out,
        "token rotate {}: {} replaces it (names and digests are printed, never a token)",
        names.old, names.new
    )?;
    engine::rotate(&mut backend, clock, &names, wait_of(args, poll), out).await
}

/// `token rotate --sandbox`: the rotation against the running sandbox, time from `clock`, its
/// counters read every `poll`.
pub async fn run_sandbox(
    args: &RotateArgs,
    clock: &impl engine::Clock,
    poll: Duration,
    out: &mut impl Write,
) -> Result<ExitCode> {
    if args.dry_run {
        bail!("--dry-run reads a cluster; with --sandbox, run without it (the sandbox is yours)");
    }
    super::check_name(&args.name)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut backend = sandbox::SandboxRotation::open(args, now)?;
    let names = engine::Names {
        old: backend.old.clone(),
        new: backend.new.clone(),
    };
    writeln!(
        out,
        "token rotate {} in the sandbox: {} replaces it",
        names.old, names.new
    )?;
    engine::rotate(&mut backend, clock, &names, wait_of(args, poll), out).await
}

/// Entry point from `token`.
pub fn run(args: &RotateArgs, out: &mut impl Write) -> Result<ExitCode> {
    if args.sandbox {
        return runtime()?.block_on(async {
            let clock = engine::TokioClock::default();
            let poll = engine::Wait::poll_for(args.quiet_for);
            run_sandbox(args, &clock, poll, out).await
        });
    }
    let repo = args
        .repo
        .clone()
        .unwrap_or_else(crate::manifests::repo_root);
    runtime()?.block_on(async {
        let cluster = Cluster::new(args.kube.client().await?, false);
        let clock = engine::TokioClock::default();
        let poll = engine::Wait::poll_for(args.quiet_for);
        run_with(
            &cluster,
            args,
            &repo,
            Access::PortForward,
            &clock,
            poll,
            out,
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn next_names() {
        assert_eq!(next_name("sleep"), "sleep-r2");
        assert_eq!(next_name("sleep-r2"), "sleep-r3");
        assert_eq!(next_name("sleep-r09"), "sleep-r09-r2");
        assert_eq!(next_name("a-rx"), "a-rx-r2");
        assert_eq!(next_name("-r4"), "-r4-r2");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
    }

    fn args() -> RotateArgs {
        RotateArgs {
            name: "sleep".into(),
            kube: Default::default(),
            namespace: "demo".into(),
            new_name: None,
            overlap: Some(Duration::from_secs(300)),
            quiet_for: Duration::from_secs(600),
            timeout: Duration::from_secs(3600),
            dry_run: true,
            repo: None,
            sandbox: false,
            state_dir: None,
        }
    }

    #[test]
    fn the_plan_in_four_steps() {
        let gate = Gate {
            id: "WasmPlugin/rfma-token-gate".into(),
            selector: String::new(),
            tokens: vec!["sleep".into(), "sleep-r2".into()],
            principals: BTreeMap::from([(
                "sleep".to_string(),
                vec!["spiffe://cluster.local/ns/demo/sa/sleep".to_string()],
            )]),
        };
        let err = plan(&args(), &gate, "demo", 0, vec![], None).unwrap_err();
        assert!(
            err.to_string().contains("sleep-r2 is already configured"),
            "{err}"
        );
        let a = RotateArgs {
            new_name: Some("sleep-2027".into()),
            ..args()
        };
        let p = plan(&a, &gate, "demo", 1_798_761_600, vec![], None).unwrap();
        assert_eq!(p.gate, "WasmPlugin/demo/rfma-token-gate");
        assert_eq!(
            p.not_after,
            Some(("2027-01-01T00:05:00Z".into(), Duration::from_secs(300)))
        );
        let mut out = Vec::new();
        print_plan(&p, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "1. add token sleep-2027 beside sleep in WasmPlugin/demo/rfma-token-gate",
            "principals spiffe://cluster.local/ns/demo/sa/sleep (copied from sleep)",
            "sleep stays valid until 2027-01-01T00:05:00Z",
            "2. write the new token to Secret demo/rfma-demo-token (key token)",
            "note: --overlap 5m is shorter than --quiet-for 10m",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        let a = RotateArgs {
            name: "partner".into(),
            overlap: None,
            ..args()
        };
        let gate = Gate {
            tokens: vec!["partner".into()],
            ..gate
        };
        let mut out = Vec::new();
        print_plan(&plan(&a, &gate, "demo", 0, vec![], None).unwrap(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("2. no Secret is known for partner"), "{text}");
        assert!(
            text.contains("partner stays valid, with no end, until step 4"),
            "{text}"
        );
        assert!(!text.contains("note:"), "{text}");
    }
}
