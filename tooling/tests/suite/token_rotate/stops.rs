//! What stops a rotation short of removing the old token, and resuming one: the old token still
//! in use at the timeout (kept, exit 1), a proxy that cannot be read (an error), a run stopped
//! after its first write (resumed with the recorded new token).

use super::*;

#[tokio::test]
async fn the_old_token_still_in_use_is_kept_and_the_command_fails_after_its_timeout() {
    let reg = start_registry(|_| String::new());
    let (t, secrets) = switched();
    let mut steps = open(&secrets, &t);
    for n in [5, 6, 7, 8] {
        steps.extend(read_proxies(
            &stats(&[("loadtester", n)]),
            &stats(&[("loadtester", 2)]),
        ));
    }
    let (result, out, log, waited) = run(steps, &args("loadtester"), &reg).await;
    assert_eq!(result.unwrap(), ExitCode::FAILURE, "{out}");
    assert_eq!(waited, Duration::from_secs(30), "gave up at --timeout");
    assert!(
        log.iter().all(|e| e.method == "GET"),
        "nothing written, nothing removed: {log:?}"
    );
    assert_mentions(
        &out,
        &[
            "already done: Secret flagger-system/rfma-loadtester-token records loadtester-r2 beside loadtester",
            "loadtester is still in use after 30s",
            "on httpbin-a",
            "loadtester is kept beside loadtester-r2",
        ],
    );
    assert!(!out.contains("removed:"), "{out}");
}

#[tokio::test]
async fn an_unreadable_proxy_stops_the_rotation_with_nothing_removed() {
    let reg = start_registry(|_| String::new());
    let (t, secrets) = switched();
    let mut steps = open(&secrets, &t);
    steps.extend([
        get(PODS, pod_list("demo", &["httpbin-a", "httpbin-b"])),
        text(format!("{PODS}/httpbin-a:15020/proxy/stats/prometheus"), 200, &stats(&[("loadtester", 1)])),
        step(
            "GET",
            format!("{PODS}/httpbin-b:15020/proxy/stats/prometheus"),
            503,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable",
                   "code": 503, "message": "no endpoints available"}),
        ),
    ]);
    let (result, out, log, _) = run(steps, &args("loadtester"), &reg).await;
    let e = format!("{:#}", result.unwrap_err());
    assert_mentions(
        &e,
        &[
            "cannot tell whether the old token is still in use",
            "httpbin-b",
        ],
    );
    assert!(log.iter().all(|e| e.method == "GET"), "{log:?}");
    assert!(!out.contains("removed:"), "{out}");
}

/// A run stopped after step 1's Secret write (here: by a registry that was not ready) is resumed:
/// the recorded new token is published (not a second one made), handed over, then waited on.
#[tokio::test]
async fn a_rotation_stopped_after_its_first_write_resumes_with_the_same_new_token() {
    let reg = start_registry(|_| String::new());
    let mut t = deployed();
    let next = istio_demo::commands::token::generate().unwrap();
    t[0].begin_rotation("sleep-r2", &next, None).unwrap();
    let secrets: Vec<Value> = t.iter().map(|t| t.secret(false)).collect();
    let mut steps = open(&secrets, &t);
    steps.extend(publish(true, t.clone()));
    steps.extend(read_proxies(
        &stats(&[("sleep", 9), ("sleep-r2", 0)]),
        &stats(&[("sleep-r2", 0)]),
    ));
    steps.extend(write_secret(&t[0]));
    // The old token keeps being used until the timeout.
    for n in [10, 11, 12, 13] {
        steps.extend(read_proxies(&stats(&[("sleep", n)]), &stats(&[])));
    }
    let (result, out, log, _) = run(steps, &args("sleep"), &reg).await;
    assert_eq!(result.unwrap(), ExitCode::FAILURE, "{out}");
    let writes = patches_of(&log, &secret_path(&t[0]));
    assert_eq!(writes.len(), 1, "only the hand-over is written: {out}");
    assert_eq!(
        data(&writes[0].body, "token").as_deref(),
        Some(next.as_str())
    );
    assert_eq!(rotation(&writes[0].body).unwrap()["step"], "switched");
    assert_mentions(
        &out,
        &[
            "resuming: Secret demo/rfma-demo-token already records sleep-r2 beside sleep",
            "sleep is kept beside sleep-r2",
        ],
    );
}
