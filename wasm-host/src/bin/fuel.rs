//! Prints the fuel (wasm instructions, as wasmtime counts them) one request
//! costs on each path through the shipped filter, with the access record on.
//! `cargo run -p rfma-wasm-host --bin fuel` (after `make wasm`; `make test` runs it).

use rfma_wasm_host::fuel::{ALLOWED_FUEL_BUDGET, measure, table};
use rfma_wasm_host::{filter_module, module_path};

fn main() {
    let path = module_path("RFMA_WASM", "rfma_filter.wasm");
    let path = path.canonicalize().unwrap_or(path);
    let rows = measure(filter_module());
    println!(
        "Fuel per request, {} (deterministic: counted, not timed)",
        path.display()
    );
    print!("{}", table(&rows));
    println!("budget for the allowed path: {ALLOWED_FUEL_BUDGET}");
    let allowed = rows.iter().find(|r| r.path == "allowed").map(|r| r.fuel);
    if allowed.is_some_and(|f| f > ALLOWED_FUEL_BUDGET) {
        eprintln!("the allowed path is over its budget");
        std::process::exit(1);
    }
}
