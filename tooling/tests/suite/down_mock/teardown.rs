//! `down` against the scripted API: suspend self-sync first, delete dependants first, wait for
//! finalizers, keep what existed before `up`; a dry run deletes and waits for nothing.

use super::conversation::*;
use super::fixtures::*;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn down_suspends_self_sync_first_then_deletes_dependants_first_and_waits_for_finalizers() {
    let (log, text) = teardown_conversation(false).await;

    // 1. Before anything else, a JSON merge patch suspends the self-managing Kustomization.
    let first = &log[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("PATCH", format!("{KS}/istio-demo").as_str()),
        "the first request of `down`: {}",
        first.line()
    );
    assert_eq!(first.content_type, "application/merge-patch+json");
    assert_eq!(first.body, json!({"spec": {"suspend": true}}));
    assert!(
        first.params_are(&[]),
        "a plain merge patch: no fieldManager, no force (server-side apply would take over the \
         whole object): {}",
        first.line()
    );
    assert!(
        text.contains("  suspended: Kustomization/flux-system/istio-demo"),
        "{text}"
    );

    // 2. The deletes, in order; the self-managing Kustomization only after all the others.
    let ks = |n: &str| format!("{KS}/{n}");
    let ns = |n: &str| format!("{NS}/{n}");
    assert_eq!(
        deletes(&log),
        [
            ks("notifications"),
            ks("logging"),
            ks("apps"),
            ks("infrastructure"),
            ks("istio-demo"),
            format!("{SOURCES}/ocirepositories/istio-demo"),
            format!("{SOURCES}/gitrepositories/istio-demo"),
            ns("demo/secrets/rfma-demo-token"),
            ns("flagger-system"),
            ns("istio-demo-registry"),
        ]
    );

    // 3. Each delete the server accepted is waited for (re-read until it is gone) before the next;
    //    `notifications` was still finalizing at the first read.
    let delete_at: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].method == "DELETE")
        .collect();
    for (n, at) in delete_at.iter().enumerate() {
        let next = delete_at.get(n + 1).copied().unwrap_or(log.len());
        let path = &log[*at].path;
        let reads = log[*at + 1..next]
            .iter()
            .filter(|e| e.method == "GET" && &e.path == path)
            .count();
        let expect = if path.ends_with("/gitrepositories/istio-demo") {
            0 // the server said 404: nothing to wait for
        } else if path.ends_with("/notifications") {
            2
        } else {
            1
        };
        assert_eq!(reads, expect, "reads of {path} after its DELETE");
    }
    assert!(
        text.contains("  deleted: Kustomization/flux-system/notifications"),
        "{text}"
    );
    assert!(
        text.contains("  absent: GitRepository/flux-system/istio-demo"),
        "{text}"
    );

    // 4. The user's namespace stays, protected from Flux's pruning by server-side apply.
    let protect: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "PATCH" && e.path == ns("demo"))
        .collect();
    assert_eq!(protect.len(), 1);
    assert!(
        protect[0].params_are(&[("fieldManager", "istio-demo"), ("force", "true")]),
        "{}",
        protect[0].line()
    );
    assert_eq!(protect[0].content_type, "application/apply-patch+yaml");
    assert_eq!(
        protect[0].body["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"],
        "disabled"
    );
    for kept in ["demo", "elk", "flux-system"] {
        assert!(
            !deletes(&log).contains(&ns(kept).as_str()),
            "Namespace/{kept} is not istio-demo's to delete"
        );
    }
    assert!(
        !deletes(&log)
            .iter()
            .any(|d| d.ends_with("/rfma-external-token")),
        "a Secret istio-demo did not make stays"
    );
    assert_mentions(
        &text,
        &[
            "keeping Namespace/demo: it existed before istio-demo",
            "absent: Namespace/elk",
            "keeping Secret/demo/rfma-external-token: not made by istio-demo",
            "deleted: Secret/demo/rfma-demo-token",
            "deleted: Namespace/istio-demo-registry",
            "left in place: Flux was installed before istio-demo",
            "the demo is down",
        ],
    );
}

#[tokio::test]
async fn down_dry_run_deletes_nothing_and_waits_for_nothing() {
    let (log, text) = teardown_conversation(true).await;
    assert_eq!(log[0].method, "PATCH");
    assert_eq!(log[0].content_type, "application/merge-patch+json");
    let writes: Vec<&Exchange> = log.iter().filter(|e| e.method != "GET").collect();
    let (real, _) = teardown_conversation(false).await;
    let lines = |l: Vec<&Exchange>| -> Vec<String> {
        l.iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect()
    };
    assert_eq!(
        lines(writes.clone()),
        lines(real.iter().filter(|e| e.method != "GET").collect()),
        "the writes of a real teardown, each as a dry run"
    );
    for e in writes {
        match e.method.as_str() {
            // kube sends DeleteOptions in the body.
            "DELETE" => assert_eq!(e.body["dryRun"], json!(["All"]), "{} {}", e.line(), e.body),
            "PATCH" => assert_eq!(
                e.params().get("dryRun").map(String::as_str),
                Some("All"),
                "{}",
                e.line()
            ),
            m => panic!("unexpected {m}: {}", e.line()),
        }
    }
    for d in deletes(&log) {
        assert!(
            !log.iter()
                .skip_while(|e| !(e.method == "DELETE" && e.path == d))
                .any(|e| e.method == "GET" && e.path == d),
            "a dry run waits for nothing, yet {d} was read after its delete"
        );
    }
    assert_mentions(
        &text,
        &[
            "would be suspended: Kustomization/flux-system/istio-demo",
            "would delete: Kustomization/flux-system/notifications",
            "would delete: Namespace/istio-demo-registry",
            "dry run complete: nothing was deleted",
        ],
    );
}
