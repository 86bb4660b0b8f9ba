//! The cost of a request, counted in fuel: deterministic, and the allowed
//! path stays under the budget written in docs/filter.md ("Cost per request").

use rfma_wasm_host::filter_module;
use rfma_wasm_host::fuel::{ALLOWED_FUEL_BUDGET, measure};

#[test]
fn fuel_is_deterministic_and_the_allowed_path_is_within_budget() {
    let first = measure(filter_module());
    let second = measure(filter_module());
    assert_eq!(first, second, "two runs must count the same fuel");
    for row in &first {
        assert!(row.fuel > 0, "{row:?}");
    }
    let allowed = first
        .iter()
        .find(|r| r.path == "allowed")
        .expect("an allowed row");
    assert!(
        allowed.fuel <= ALLOWED_FUEL_BUDGET,
        "the allowed path costs {} fuel, over its budget of {ALLOWED_FUEL_BUDGET}: \
         find the regression or, if the cost is justified, raise the budget and docs/filter.md",
        allowed.fuel
    );
    // Every deny reason and the bypass are measured.
    let paths: Vec<&str> = first.iter().map(|r| r.path).collect();
    for reason in [
        "missing_token",
        "invalid_token",
        "duplicate_token",
        "principal_mismatch",
        "internal_error",
        "expired_token",
        "token_not_yet_valid",
    ] {
        assert!(
            paths.contains(&format!("deny {reason}").as_str()),
            "{paths:?}"
        );
    }
    assert!(paths.contains(&"bypass"));
}
