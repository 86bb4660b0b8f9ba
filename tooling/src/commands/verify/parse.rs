//! Reading what the scenarios see: curl's `-w` output, Envoy's stats, fortio's report, the
//! filter's record in a sidecar log, Prometheus text, and which authorization stage is active.
//! Pure functions, tested without a cluster.

use anyhow::{Context, Result, anyhow, bail};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;
use std::collections::BTreeMap;

/// `curl -w '%{http_code} %{time_total}'` output: status and seconds.
pub fn parse_code_time(stdout: &str) -> Option<(u16, f64)> {
    let mut it = stdout.split_whitespace();
    let code = it.next()?.parse().ok()?;
    let time = it.next().map(|t| t.parse().ok()).unwrap_or(Some(0.0))?;
    Some((code, time))
}

/// The Envoy cluster hosts of a canaried service: Flagger routes `httpbin` to `httpbin-primary`
/// and `httpbin-canary`, so the counters live on those clusters.
pub fn canary_hosts(host: &str) -> Vec<String> {
    let (name, domain) = host.split_once('.').unwrap_or((host, ""));
    let dot = if domain.is_empty() { "" } else { "." };
    vec![
        host.to_string(),
        format!("{name}-primary{dot}{domain}"),
        format!("{name}-canary{dot}{domain}"),
    ]
}

/// Sum of an Envoy counter over the clusters of `hosts` in `pilot-agent request GET stats` output,
/// e.g. `cluster.outbound|8000||httpbin-primary.demo.svc.cluster.local.upstream_rq_retry: 3`.
pub fn parse_stat(stats: &str, hosts: &[String], counter: &str) -> Option<u64> {
    let suffix = format!(".{counter}");
    let mut found = None;
    for line in stats.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        // cluster.outbound|<port>|<subset>|<host>.<counter>
        let Some(rest) = name.strip_prefix("cluster.outbound|") else {
            continue;
        };
        let Some(h) = rest.splitn(3, '|').nth(2) else {
            continue;
        };
        if h.strip_suffix(&suffix)
            .is_some_and(|h| hosts.iter().any(|x| x == h))
        {
            let v: u64 = value.trim().parse().ok()?;
            *found.get_or_insert(0) += v;
        }
    }
    found
}

/// Status code counts from `fortio load` output (`Code 503 : 7 (23.3 %)`).
pub fn parse_fortio_codes(output: &str) -> BTreeMap<u16, u64> {
    let mut codes = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("Code ") else {
            continue;
        };
        let Some((code, count)) = rest.split_once(':') else {
            continue;
        };
        let (Ok(code), Some(Ok(count))) = (
            code.trim().parse::<i32>(),
            count.split_whitespace().next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if let Ok(code) = u16::try_from(code) {
            *codes.entry(code).or_insert(0) += count;
        }
    }
    codes
}

/// The JSON object of a sidecar log line (from its first `{`), if it holds one.
fn line_object(line: &str) -> Option<Value> {
    line.find('{')
        .and_then(|i| serde_json::from_str::<Value>(line[i..].trim()).ok())
        .filter(Value::is_object)
}

/// Every JSON object of a sidecar log, in log order (Envoy's own text lines are skipped).
pub fn log_objects(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines().filter_map(line_object)
}

/// The filter's access record with `http.request.id == id` in a sidecar log.
pub fn find_record(log: &str, id: &str) -> Option<Value> {
    log.lines()
        .filter(|l| l.contains(id))
        .filter_map(line_object)
        .find(|v| {
            v.pointer("/http/request/id").and_then(Value::as_str) == Some(id)
                && v.pointer("/rfma/decision").is_some()
        })
}

/// True when the Prometheus text has a sample of `metric` (any labels).
pub fn prometheus_has(text: &str, metric: &str) -> bool {
    text.lines().any(|l| {
        !l.starts_with('#')
            && (l.starts_with(&format!("{metric} ")) || l.starts_with(&format!("{metric}{{")))
    })
}

/// One sample of a metric in Prometheus text: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `metric` in Prometheus text exposition format (`name{l="v",...} value
/// [timestamp]`); other metrics' lines are not looked at. A line of `metric` that does not parse
/// is an error naming its line number, so a broken exposition is not read as "no samples".
pub fn prometheus_samples(text: &str, metric: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix(metric) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(['{', ' ', '\t'])) {
            continue; // another metric whose name starts with this one
        }
        let sample = parse_sample(rest).with_context(|| format!("line {}: {metric}", i + 1))?;
        samples.push(sample);
    }
    Ok(samples)
}

/// The part of a sample line after the metric's name.
fn parse_sample(rest: &str) -> Result<Sample> {
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end = loop {
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            let Some(&(start, c)) = chars.peek() else {
                bail!("no closing '}}'");
            };
            if c == '}' {
                break start + 1;
            }
            if !(c.is_ascii_alphabetic() || c == '_') {
                bail!("{c:?} cannot start a label name");
            }
            let mut name = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
            {
                name.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                bail!("label {name}: expected =\"value\"");
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => bail!("label {name}: unterminated value"),
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => bail!("label {name}: bad escape {other:?}"),
                    },
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(name.clone(), value).is_some() {
                bail!("label {name} twice");
            }
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            match chars.peek().map(|&(_, c)| c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => bail!("expected ',' or '}}' after label {name}"),
            }
        };
        rest = &after[end..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().context("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .map_err(|_| anyhow!("value {v:?} is not a number"))?,
    };
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        bail!("timestamp {ts:?} is not an integer");
    }
    if let Some(extra) = fields.next() {
        bail!("unexpected {extra:?} after the value");
    }
    Ok(Sample { labels, value })
}

/// The authorization stage that the policies in the namespace implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzStage {
    pub names: Vec<String>,
    /// An ALLOW policy with no rules exists (deny everything not allowed elsewhere).
    pub default_deny: bool,
    /// Some ALLOW rule admits callers from the namespace (by namespace or service account).
    pub allows_namespace: bool,
    /// The methods allowed, when every allowing rule restricts them.
    pub methods: Option<Vec<String>>,
    /// Some rule requires the token header.
    pub requires_token_header: bool,
}

/// Reads the stage from AuthorizationPolicy objects.
pub fn authz_stage(policies: &[DynamicObject], namespace: &str) -> AuthzStage {
    let mut s = AuthzStage {
        names: Vec::new(),
        default_deny: false,
        allows_namespace: false,
        methods: None,
        requires_token_header: false,
    };
    let mut all_restricted = true;
    let mut methods = Vec::new();
    let mut any_rule = false;
    for p in policies {
        s.names.push(p.name_any());
        let action = p
            .data
            .pointer("/spec/action")
            .and_then(Value::as_str)
            .unwrap_or("ALLOW");
        if action != "ALLOW" {
            continue;
        }
        let rules = p
            .data
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if rules.is_empty() {
            s.default_deny = true;
            continue;
        }
        for r in &rules {
            // The rule admits the demo's callers: by namespace, or by a service account of the namespace.
            let sa_prefix = format!("cluster.local/ns/{namespace}/sa/");
            let from_ns = r
                .pointer("/from")
                .and_then(Value::as_array)
                .is_some_and(|f| {
                    f.iter().any(|f| {
                        f.pointer("/source/namespaces")
                            .and_then(Value::as_array)
                            .is_some_and(|n| n.iter().any(|n| n == namespace))
                            || f.pointer("/source/principals")
                                .and_then(Value::as_array)
                                .is_some_and(|p| {
                                    p.iter().any(|p| {
                                        p.as_str().is_some_and(|p| p.starts_with(&sa_prefix))
                                    })
                                })
                    })
                });
            if !from_ns {
                continue;
            }
            any_rule = true;
            s.allows_namespace = true;
            let m: Vec<String> = r
                .pointer("/to")
                .and_then(Value::as_array)
                .map(|to| {
                    to.iter()
                        .flat_map(|t| {
                            t.pointer("/operation/methods")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default()
                        })
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if m.is_empty() {
                all_restricted = false;
            }
            methods.extend(m);
            if r.pointer("/when")
                .and_then(Value::as_array)
                .is_some_and(|w| {
                    w.iter().any(|w| {
                        w["key"].as_str().is_some_and(|k| {
                            k.eq_ignore_ascii_case("request.headers[x-rfma-token]")
                        })
                    })
                })
            {
                s.requires_token_header = true;
            }
        }
    }
    if any_rule && all_restricted {
        methods.sort();
        methods.dedup();
        s.methods = Some(methods);
    }
    s
}
