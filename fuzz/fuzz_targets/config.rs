#![no_main]
//! See `rfma_fuzz::run_config` for the input format and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rfma_fuzz::run_config(data) {
        panic!("property broken: {broken}");
    }
});
