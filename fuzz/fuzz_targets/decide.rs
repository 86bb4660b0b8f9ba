#![no_main]
//! See `rfma_fuzz::run_decide` for the input format and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rfma_fuzz::run_decide(data) {
        panic!("property broken: {broken}");
    }
});
