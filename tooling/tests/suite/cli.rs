//! The `istio-demo` binary's cluster, token and wasm commands: complete `--help`, and bad
//! arguments give a clear error and a non-zero exit (2 for usage errors, 1 for failures).

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_command_has_complete_help() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["up"],
            &[
                "--dry-run[=<MODE>]",
                "none",
                "server",
                "client",
                "-o, --output",
                "yaml",
                "--profile",
                "minimal",
                "full",
                "--source",
                "oci",
                "git",
                "--git-url",
                "--git-branch",
                "--wasm <PATH>",
                "--timeout",
                "--flux-manifest",
                "--flux-sha256",
                "--repo",
                "--kubeconfig",
                "--context",
                "--dry-run=client -o yaml needs no cluster",
            ],
        ),
        (
            &["status"],
            &[
                "--output",
                "json",
                "NAME, KIND, READY, MESSAGE, AGE",
                "--kubeconfig",
                "--context",
            ],
        ),
        (
            &["verify"],
            &[
                "--namespace",
                "--sleep-container",
                "--fortio-container",
                "PASS or FAIL",
                "--kubeconfig",
                "--context",
            ],
        ),
        (
            &["down"],
            &[
                "--dry-run",
                "--timeout",
                "--keep-flux",
                "--repo",
                "Suspends the self-managing Flux Kustomization",
                "never deleted",
                "--kubeconfig",
                "--context",
            ],
        ),
        (&["token"], &["new", "hash", "show"]),
        (
            &["token", "show"],
            &[
                "<NAME>",
                "sleep, loadtester or external",
                "--kubeconfig",
                "--context",
            ],
        ),
        (
            &["token", "new"],
            &["<NAME>", "--principal", "32 random bytes"],
        ),
        (&["token", "hash"], &["standard input", "64 lowercase hex"]),
        (&["wasm"], &["push"]),
        (
            &["wasm", "push"],
            &[
                "<REF>",
                "--wasm",
                "--insecure",
                "plugin.wasm",
                "config.json",
            ],
        ),
    ];
    for (cmd, wants) in cases {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = run(&args);
        let help = text(&out.stdout);
        assert!(
            out.status.success(),
            "{cmd:?} --help failed: {}",
            text(&out.stderr)
        );
        assert!(help.contains("Usage: istio-demo"), "{cmd:?}: {help}");
        for w in *wants {
            assert!(help.contains(w), "{cmd:?} --help lacks {w:?}:\n{help}");
        }
        // Every option is described: no flag line of the Options section without text after it.
        let options = help
            .lines()
            .skip_while(|l| *l != "Options:")
            .filter(|l| l.starts_with(' ') && l.trim_start().starts_with('-'));
        for line in options {
            let described = line
                .trim()
                .split("  ")
                .filter(|p| !p.trim().is_empty())
                .count()
                >= 2;
            let next_is_text = help
                .lines()
                .skip_while(|l| *l != line)
                .nth(1)
                .is_some_and(|n| n.starts_with("          "));
            assert!(
                described || next_is_text,
                "{cmd:?}: undocumented option {line:?}"
            );
        }
    }
    let top = text(&run(&["--help"]).stdout);
    for c in ["up", "status", "verify", "down", "token", "wasm"] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(c)),
            "top-level help lacks {c}:\n{top}"
        );
    }
}

#[test]
fn bad_arguments_are_clear_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["up", "--timeout", "5x"], "unknown unit"),
        (&["up", "--dry-run=bogus"], "invalid value 'bogus'"),
        // kubectl's convention: the mode only with `=`; a separate word is no mode.
        (
            &["up", "--dry-run", "client"],
            "unexpected argument 'client'",
        ),
        (&["up", "-o", "json"], "invalid value 'json'"),
        (&["up", "--profile", "huge"], "invalid value 'huge'"),
        (&["up", "--source", "svn"], "invalid value 'svn'"),
        (&["token", "show"], "<NAME>"),
        (&["down", "--timeout", "soon"], "expected a number"),
        (&["status", "-o", "yaml"], "invalid value 'yaml'"),
        (&["wasm", "push"], "<REF>"),
        (&["token", "new"], "<NAME>"),
        (&["token", "frobnicate"], "unrecognized subcommand"),
        (&["verify", "--bogus"], "unexpected argument '--bogus'"),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should be a usage error"
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(want),
            "{args:?}: stderr lacks {want:?}:\n{err}"
        );
    }
}

#[test]
fn failures_exit_one_with_the_reason() {
    let out = run(&["token", "new", "Bad Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no token printed for a bad name");
    assert!(
        text(&out.stderr).contains("character 'B' is not allowed"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["wasm", "push", "localhost:5000/rfma-filter"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing tag"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["status", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/kubeconfig"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["up", "--dry-run", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn token_commands_end_to_end() {
    let mut child = Command::new(BIN)
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"test1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "1b4f0e9851971998e732078544c96b36c3d01cedf7caa332359d6f1d83567014\n"
    );

    let out = run(&[
        "token",
        "new",
        "sleep",
        "--principal",
        "spiffe://cluster.local/ns/demo/sa/sleep",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let token = lines.next().unwrap();
    let entry: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(token.len() >= 43, "at least 256 bits in base64url");
    assert_eq!(entry["sha256"], istio_demo::commands::token::digest(token));
    assert_eq!(
        entry["principals"][0],
        "spiffe://cluster.local/ns/demo/sa/sleep"
    );
    assert!(
        !text(&out.stderr).contains(token),
        "the token is printed once, on stdout only"
    );
    let again = text(&run(&["token", "new", "sleep"]).stdout);
    assert_ne!(again.lines().next().unwrap(), token, "every token is fresh");
}

/// A kubeconfig in `dir` whose only context talks to `server` with a bearer token.
fn kubeconfig(dir: &tempfile::TempDir, server: &str) -> String {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: u\n  user:\n    token: demo-not-a-secret\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// Exit status 1 and exactly one line on stderr, `istio-demo <cmd>: error: ...` holding `want`;
/// nothing on stdout.
fn fails_with(out: &Output, cmd: &str, want: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one error line:\n{err}");
    assert!(
        err.starts_with(&format!("istio-demo {cmd}: error: ")),
        "{err}"
    );
    assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn up_flags_that_do_not_go_together_are_clear_errors() {
    // Checked before any cluster or file is read: no kubeconfig is needed to get them.
    for args in [
        &["up", "-o", "yaml"][..],
        &["up", "--dry-run", "-o", "yaml"],
        &["up", "--dry-run=server", "--output", "yaml"],
    ] {
        fails_with(&run(args), "up", "-o yaml goes with --dry-run=client");
    }
    for args in [
        &["up", "--git-url", "x"][..],
        &["up", "--source", "oci", "--git-branch", "main"],
        &[
            "up",
            "--dry-run=client",
            "--git-url",
            "https://example.org/fork.git",
        ],
    ] {
        fails_with(
            &run(args),
            "up",
            "--git-url and --git-branch go with --source git",
        );
    }
}

#[test]
fn token_show_without_a_reachable_cluster_is_a_clear_error() {
    // After a rotation any name may be a demo token's, so `token show` reads the token Secrets for
    // every name (an unknown one is tested against the API mock in `token_rotate`); nothing
    // listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&dir, "https://127.0.0.1:1");
    fails_with(
        &run(&["token", "show", "nope", "--kubeconfig", &k]),
        "token",
        "Connection refused",
    );
}

#[test]
fn an_unreachable_api_server_is_a_clear_error() {
    // A TLS client is built (rustls with ring) and the connection is refused: no panic, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let k = &kubeconfig(&dir, &format!("https://127.0.0.1:{port}"));
    let out = run(&["up", "--dry-run=server", "--kubeconfig", k]);
    fails_with(&out, "up", "the API server is not reachable");
    let err = text(&out.stderr);
    assert!(
        !err.contains("demo-not-a-secret"),
        "the bearer token is never printed: {err}"
    );
    let out = run(&["verify", "--kubeconfig", k, "--context", "missing-context"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing-context"),
        "{}",
        text(&out.stderr)
    );
}
