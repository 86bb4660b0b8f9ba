//! Regenerates the structured seeds of the `config` target (files `corpus/config/structured-*`,
//! inputs that start with a 0 byte): for each outcome the model predicts (valid, or an error
//! at a given field), the shortest random input found that leads to it. Run by hand:
//! `cargo test --manifest-path fuzz/Cargo.toml --test suite seeds:: -- --ignored`.

use arbitrary::{Arbitrary, Unstructured};
use rfma_fuzz::{config_gen, config_model, tree};
use std::collections::BTreeMap;

#[test]
#[ignore = "writes files into fuzz/corpus; run by hand"]
fn regenerate_structured_config_seeds() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut best: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for _ in 0..100_000 {
        let len = 8 + (next() % 120) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut u = Unstructured::new(&bytes);
        let (Ok(cfg), Ok(style)) = (
            config_gen::Config::arbitrary(&mut u),
            tree::Style::arbitrary(&mut u),
        ) else {
            continue;
        };
        let text = tree::render(&cfg.tree(), style);
        let parsed = tree::parse(text.as_bytes()).expect("rendered JSON parses");
        let class = match config_model::expect(&parsed) {
            Ok(_) => "valid".to_owned(),
            Err(wrong) => class_of(&wrong[0].field),
        };
        // Keys made of random text give one class each: keep the named ones.
        if !class
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
            || class.starts_with('-')
        {
            continue;
        }
        let mut input = vec![0u8];
        input.extend(&bytes);
        if best.get(&class).is_none_or(|b| b.len() > input.len()) {
            best.insert(class, input);
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/config");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("structured-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (class, input) in &best {
        std::fs::write(dir.join(format!("structured-{class}")), input).unwrap();
    }
    println!(
        "{} classes: {:?}",
        best.len(),
        best.keys().collect::<Vec<_>>()
    );
    assert!(best.contains_key("valid") && best.len() >= 10);
}

/// `tokens[3].principals[0]` -> `tokens-principals`; an unknown key -> `<parent>-unknown`.
fn class_of(field: &str) -> String {
    const KNOWN: &[&str] = &[
        "configuration",
        "header",
        "tokens",
        "name",
        "sha256",
        "value",
        "principals",
        "bypass",
        "path_prefix",
        "methods",
        "strip_header",
        "log",
        "sink",
        "allowed",
        "denied",
        "realm",
        "not_before",
        "not_after",
    ];
    let mut parts: Vec<String> = field
        .split('.')
        .map(|p| p.split('[').next().unwrap_or_default().to_owned())
        .collect();
    if let Some(last) = parts.last_mut()
        && !KNOWN.contains(&last.as_str())
    {
        *last = "unknown".into();
    }
    parts.join("-")
}
