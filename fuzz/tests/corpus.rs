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
fn record_corpus() {
    assert!(run_dir("record", rfma_fuzz::run_record) >= 20);
}

/// The properties can fail: a broken policy, record or body is caught.
#[test]
fn the_checks_catch_a_wrong_filter() {
    // A configuration the model rejects at `tokens[0].value`, fed as bytes.
    let err = rfma_fuzz::config_model::expect(
        &rfma_fuzz::tree::parse(br#"{"tokens":[{"name":"a","value":" x"}]}"#).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err, vec!["tokens[0].value".to_owned()]);
    // A token header value is a leak in a record, unless another input carries it too.
    let secrets = rfma_fuzz::checks::Secrets::new(rfma_fuzz::lines::SECRETS);
    let token = rfma_fuzz::lines::secret(0).as_bytes();
    assert!(secrets.leak(token, &[]).is_some());
    assert!(secrets.leak(token, &[token]).is_none());
}
