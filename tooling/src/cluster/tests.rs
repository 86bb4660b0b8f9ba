//! The unit tests of the cluster module: durations, what changed, exit codes.

use super::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn durations() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
    assert!(
        parse_duration("5x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit")
    );
    assert!(
        parse_duration("m")
            .unwrap_err()
            .to_string()
            .contains("expected a number")
    );
    assert!(
        parse_duration("5m3")
            .unwrap_err()
            .to_string()
            .contains("missing unit")
    );
}

#[test]
fn changed_paths_name_what_changed() {
    let a = json!({"spec": {"url": "a", "ref": {"branch": "main"}, "interval": "1m"}, "metadata": {"labels": {"x": "1"}}});
    let b = json!({"spec": {"url": "b", "ref": {"branch": "dev"}, "interval": "1m"}, "metadata": {"labels": {"x": "1", "y": "2"}}});
    assert_eq!(
        changed_paths(&a, &b, "", 3),
        ["metadata.labels.y", "spec.ref.branch", "spec.url"]
    );
    assert_eq!(changed_paths(&a, &b, "", 1), ["metadata", "spec"]);
    assert!(changed_paths(&a, &a, "", 3).is_empty());
    assert_eq!(
        Outcome::Configured(vec!["spec.url".into()]).to_string(),
        "configured (spec.url)"
    );
}

#[test]
fn exit_codes() {
    let st: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
        serde_json::from_value(json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}
        }))
        .unwrap();
    assert_eq!(exit_code(&st), 7);
    let ok: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
        serde_json::from_value(json!({"status": "Success"})).unwrap();
    assert_eq!(exit_code(&ok), 0);
}
