//! Every checked-in seed passes its target's properties, without the fuzzer: the corpus is
//! also a regression suite (`cargo test --manifest-path fuzz/Cargo.toml`).

use std::path::Path;

fn run_dir(target: &str, run: fn(&[u8]) -> Result<(), String>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = run(&data) {
            failures.push(format!("{}: {e}", path.display()));
        }
        count += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn config_corpus() {
    assert!(run_dir("config", rfma_fuzz::run_config) >= 50);
}

#[test]
fn decide_corpus() {
    assert!(run_dir("decide", rfma_fuzz::run_decide) >= 40);
}

#[test]
fn handover_corpus() {
    assert!(run_dir("handover", rfma_fuzz::run_handover) >= 20);
}

/// The properties can fail: a broken policy, error message, hand-over or body is caught.
#[test]
fn the_checks_catch_a_wrong_filter() {
    use rfma_filter::config::ConfigError;
    use rfma_fuzz::config_model::{self, REMOVED_SINK_MESSAGE, check_error};
    // A configuration the model rejects at `tokens[0].value`, fed as bytes.
    let model = |text: &[u8]| config_model::expect(&rfma_fuzz::tree::parse(text).unwrap());
    let err = model(br#"{"tokens":[{"name":"a","value":" x"}]}"#).unwrap_err();
    let fields: Vec<&str> = err.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["tokens[0].value"]);
    // The removed sinks are rejected with the parser's own words, which the check holds it to.
    for sink in ["proxy_log", "both"] {
        let text =
            format!(r#"{{"tokens":[{{"name":"a","value":"x"}}],"log":{{"sink":"{sink}"}}}}"#);
        let wrong = model(text.as_bytes()).unwrap_err();
        assert_eq!(wrong.len(), 1);
        assert_eq!(wrong[0].message, Some(REMOVED_SINK_MESSAGE));
        let parsed = rfma_filter::config::parse(text.as_bytes()).unwrap_err();
        check_error(&parsed, &wrong).unwrap();
        rfma_fuzz::run_config(text.as_bytes()).unwrap();
        let old = ConfigError {
            field: "log.sink".into(),
            message: "expected one of: filter_state, proxy_log, both, none".into(),
        };
        assert!(check_error(&old, &wrong).is_err());
        let elsewhere = ConfigError {
            field: "log".into(),
            message: REMOVED_SINK_MESSAGE.into(),
        };
        assert!(check_error(&elsewhere, &wrong).is_err());
    }
    // A token header value is a leak in an output, unless another input carries it too.
    let secrets = rfma_fuzz::checks::Secrets::new(rfma_fuzz::lines::SECRETS);
    let token = rfma_fuzz::lines::secret(0).as_bytes();
    assert!(secrets.leak(token, &[]).is_some());
    assert!(secrets.leak(token, &[token]).is_none());
}
