//! `istio-demo token new NAME` and `istio-demo token hash`: make the filter's token allowlist
//! entries without ever writing a clear token to Git. `token show` prints a deployed demo token;
//! `token usage` ([`usage`]) shows how much each configured token is used, per proxy.
//!
//! The filter compares the SHA-256 of the trimmed header value with the `tokens[].sha256` digests of
//! its configuration (issue 2), so a digest made here is exactly what the filter will compute.

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::process::ExitCode;

pub mod rotate;
pub mod usage;

/// Random bytes in a new token: 256 bits, well above the 128-bit floor.
pub const TOKEN_BYTES: usize = 32;

#[derive(Debug, Args)]
#[command(
    about = "Make tokens for the filter's allowlist and their SHA-256 digests; show how much each is used",
    long_about = "Make tokens for the filter's allowlist and their SHA-256 digests (`new`, `hash`), print a \
deployed demo token (`show`), and show, per gated proxy, how many requests each configured token let through and \
when a record last named it (`usage`), and replace a token without downtime (`rotate`). \
Only `new` and `show` print a token (and `rotate --sandbox`, the sandbox's new token once); `usage` prints token names only, `rotate` names and digests."
)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh random token (once: store it now) and the `tokens` entry holding its digest.
    #[command(
        long_about = "Generates a token of 32 random bytes from the operating system (256 bits), encoded as \
unpadded base64url (43 characters, safe in an HTTP header). The token is printed once, on the first line; it is \
never stored. The second line is the JSON `tokens` entry for the WasmPlugin's pluginConfig, carrying only the \
token's SHA-256 digest, which is safe to commit."
    )]
    New(NewArgs),
    /// Read a token on standard input and print its SHA-256 digest (64 lowercase hex digits).
    #[command(
        long_about = "Reads a token on standard input (surrounding whitespace, such as the newline of `echo`, is \
trimmed, as the filter trims the header value) and prints the SHA-256 digest (64 lowercase hex digits) that goes in \
`tokens[].sha256`. Fails on an empty token or one spanning several lines."
    )]
    Hash,
    /// Print a deployed demo token (from its Secret in the cluster), for `curl`.
    #[command(
        long_about = "Reads the demo token NAME (sleep, loadtester or external) from the Secret `istio-demo up` made \
for it and prints it on standard output, alone on one line, so that `curl -H \"x-rfma-token: $(istio-demo token show \
external)\" ...` works. Nothing else prints it: not `up`, not a log. Fails if the Secret does not exist."
    )]
    Show(ShowArgs),
    /// Per gated proxy: each configured token's allowed count and when a record last named it.
    #[command(
        long_about = "For every pod the gate (the WasmPlugin or TrafficExtension of --namespace carrying a token \
list) selects, prints each configured token's count of allowed requests, from the proxy's \
rfma_token_allowed_total{token=\"<name>\"} counter (pilot-agent's merged /stats/prometheus on port 15020, read \
through the API server's pod proxy subresource), and when it was last seen: the @timestamp of the newest access \
record naming it (rfma.token.name, with the decision: allow, or an expired_token / token_not_yet_valid deny) in \
the istio-proxy container's log over --since, or \"not in the last <since>\". A token with no series on a proxy \
counts 0 (\"no counter\"). Only token names are printed, never a token or a digest. Needs get on pods/proxy and \
pods/log and list on pods and the gate's kind; a 403 names the missing grant. Exits 1 when a proxy's stats or log \
could not be read (the rest is still printed)."
    )]
    Usage(usage::UsageArgs),
    /// Replace token NAME without downtime: add a new one, hand it over, wait until NAME is unused, remove it.
    #[command(
        long_about = "Replaces the demo token NAME without downtime, in the cluster `istio-demo up` deployed \
(OCI source) or, with --sandbox, in the running `istio-demo sandbox`: 1. adds a new token (--new-name, default \
NAME-r2) beside NAME in the gate's configuration, copying NAME's principals; NAME stays valid, until now + \
--overlap if given (its not_after); 2. hands the new token to NAME's client (the cluster: the Secret it reads; the \
sandbox: printed once, for you); 3. waits until NAME's rfma_token_allowed_total has not changed for --quiet-for \
on every proxy the gate selects (a proxy that restarts or appears starts its quiet period over; one that cannot \
be read stops the rotation); 4. removes NAME and prints what was removed. Past --timeout with NAME still in use, \
NAME is kept and the command exits 1; running it again resumes the wait.\n\n\
In the cluster nothing Flux owns is patched: the token Secrets record the rotation, the manifests are rendered \
again from them and pushed as a new Flux artifact, and the OCIRepository is pinned to it; a later `up` renders \
the same list. --dry-run prints the plan and only reads. Prints names and digests, never a token (but the \
sandbox's new token, once)."
    )]
    Rotate(rotate::RotateArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The token's name in the filter's configuration.
    pub name: String,
    #[command(flatten)]
    pub kube: crate::cluster::KubeArgs,
}

/// `token show`: the token the gate calls `name`, from the demo token Secret that holds it. After
/// a rotation a slot's Secret holds the new name (and, between adding it and handing it over, both),
/// so every demo token Secret is read.
pub async fn show(cluster: &crate::cluster::Cluster, name: &str) -> Result<String> {
    use crate::deploy::tokens::{DEMO_TOKENS, from_secret};
    let mut names = Vec::new();
    for spec in DEMO_TOKENS {
        let Some(secret) = cluster
            .get("v1", "Secret", Some(spec.namespace), spec.secret)
            .await?
        else {
            continue;
        };
        let Some(token) = from_secret(*spec, &secret)? else {
            continue;
        };
        if let Some(value) = token.reveal_named(name) {
            return Ok(value.to_string());
        }
        if token.names(name) {
            bail!(
                "token {name} is being retired: Secret {}/{} no longer holds it (it holds {})",
                spec.namespace,
                spec.secret,
                token.name
            );
        }
        names.push(token.name.clone());
    }
    if names.is_empty() {
        bail!("no demo token Secret here: the demo is not deployed (run `istio-demo up`)");
    }
    bail!(
        "no demo token named {name:?} (the demo's tokens: {})",
        names.join(", ")
    )
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The entry's name: 1 to 63 characters of a-z, 0-9, '.', '_' and '-', unique in the allowlist.
    pub name: String,
    /// Accept the token only from this peer identity (a SPIFFE ID such as
    /// spiffe://cluster.local/ns/demo/sa/sleep). Repeat for several.
    #[arg(long = "principal", value_name = "SPIFFE_ID")]
    pub principals: Vec<String>,
}

/// Lowercase hex SHA-256 of `token` after trimming surrounding whitespace, as the filter computes it.
pub fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A fresh token: [`TOKEN_BYTES`] bytes from the OS random source, unpadded base64url.
pub fn generate() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read the system random source: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks a `tokens[].name` against the filter's rule: 1-63 characters of `[a-z0-9._-]`.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 {
        bail!(
            "token name {name:?}: must be 1 to 63 characters long (got {})",
            name.len()
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        bail!("token name {name:?}: character {c:?} is not allowed (use a-z, 0-9, '.', '_', '-')");
    }
    Ok(())
}

/// The `tokens` entry of the filter's configuration for a token with this digest.
pub fn entry(name: &str, sha256: &str, principals: &[String]) -> Result<Value> {
    check_name(name)?;
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        bail!("sha256 must be 64 lowercase hex digits");
    }
    for p in principals {
        if !p.starts_with("spiffe://") || p.len() == "spiffe://".len() {
            bail!("--principal {p:?}: must be a SPIFFE ID starting with spiffe://");
        }
    }
    let mut e = json!({"name": name, "sha256": sha256});
    if !principals.is_empty() {
        e["principals"] = json!(principals);
    }
    Ok(e)
}

/// Reads the token from `input` for `token hash`: one line, not empty after trimming.
pub fn read_token(input: impl Read) -> Result<String> {
    let mut buf = Vec::new();
    input
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .context("cannot read the token from standard input")?;
    let text = String::from_utf8(buf).context("the token on standard input is not UTF-8")?;
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "no token on standard input (pipe one in, e.g. `printf %s \"$TOKEN\" | istio-demo token hash`)"
        );
    }
    if token.contains(['\n', '\r']) {
        bail!("standard input holds several lines; give exactly one token");
    }
    Ok(token.to_string())
}

/// Runs a `token` subcommand, writing to `out`.
pub fn run_with(args: &TokenArgs, input: impl Read, out: &mut impl Write) -> Result<ExitCode> {
    match &args.command {
        TokenCommand::New(a) => {
            check_name(&a.name)?;
            let token = generate()?;
            let e = entry(&a.name, &digest(&token), &a.principals)?;
            writeln!(out, "{token}")?;
            writeln!(out, "{e}")?;
            out.flush()?;
            eprintln!(
                "istio-demo: the first line is the token, shown only this once: store it in a secret manager. \
                 The second line is its `tokens` entry for pluginConfig (digest only, safe to commit)."
            );
        }
        TokenCommand::Hash => {
            let token = read_token(input)?;
            writeln!(out, "{}", digest(&token))?;
        }
        TokenCommand::Show(a) => {
            let token = crate::cluster::runtime()?.block_on(async {
                let cluster = crate::cluster::Cluster::new(a.kube.client().await?, false);
                show(&cluster, &a.name).await
            })?;
            writeln!(out, "{token}")?;
        }
        TokenCommand::Usage(a) => return usage::run(a, out),
        TokenCommand::Rotate(a) => return rotate::run(a, out),
    }
    Ok(ExitCode::SUCCESS)
}

/// Entry point from `main`.
pub fn run(args: &TokenArgs) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    run_with(args, std::io::stdin().lock(), &mut stdout.lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_digests() {
        // FIPS 180-2 / NIST test vectors.
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // The demo token of the filter's examples.
        assert_eq!(
            digest("test1"),
            "1b4f0e9851971998e732078544c96b36c3d01cedf7caa332359d6f1d83567014"
        );
        // Surrounding whitespace is trimmed, as the filter trims the header value.
        assert_eq!(digest(" test1\n"), digest("test1"));
    }

    #[test]
    fn generated_tokens_are_long_random_and_header_safe() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), TOKEN_BYTES);
        assert!(raw.len() * 8 >= 128);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
    }

    #[test]
    fn names_follow_the_filter_rule() {
        check_name("sleep").unwrap();
        check_name("a.b_c-1").unwrap();
        check_name(&"x".repeat(63)).unwrap();
        assert!(check_name("").unwrap_err().to_string().contains("1 to 63"));
        assert!(
            check_name(&"x".repeat(64))
                .unwrap_err()
                .to_string()
                .contains("1 to 63")
        );
        assert!(check_name("Sleep").unwrap_err().to_string().contains("'S'"));
        assert!(check_name("a b").unwrap_err().to_string().contains("' '"));
    }

    #[test]
    fn entry_has_the_config_shape_of_the_filter() {
        let d = digest("test1");
        assert_eq!(
            entry("legacy", &d, &[]).unwrap(),
            json!({"name": "legacy", "sha256": d})
        );
        let p = vec!["spiffe://cluster.local/ns/demo/sa/sleep".to_string()];
        assert_eq!(
            entry("sleep", &d, &p).unwrap(),
            json!({"name": "sleep", "sha256": d, "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"]})
        );
        let err = entry("sleep", &d, &["cluster.local/ns/demo/sa/sleep".to_string()]).unwrap_err();
        assert!(err.to_string().contains("spiffe://"), "{err}");
        assert!(entry("sleep", "ABC", &[]).is_err());
    }

    #[test]
    fn new_prints_the_token_once_and_an_entry_with_its_digest() {
        let args = TokenArgs {
            command: TokenCommand::New(NewArgs {
                name: "sleep".into(),
                principals: vec![],
            }),
        };
        let mut out = Vec::new();
        run_with(&args, std::io::empty(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let token = lines[0];
        let e: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(e, json!({"name": "sleep", "sha256": digest(token)}));
        assert!(
            !lines[1].contains(token),
            "the entry must not carry the clear token"
        );
        assert_eq!(
            text.matches(token).count(),
            1,
            "the token is printed exactly once"
        );
    }

    #[test]
    fn hash_reads_one_trimmed_token() {
        let args = TokenArgs {
            command: TokenCommand::Hash,
        };
        let mut out = Vec::new();
        run_with(&args, &b"test1\n"[..], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{}\n", digest("test1"))
        );
        let err = run_with(&args, &b"  \n"[..], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no token"), "{err}");
        let err = run_with(&args, &b"one\ntwo\n"[..], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("several lines"), "{err}");
    }
}
