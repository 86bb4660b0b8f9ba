#![no_main]
//! See `rfma_fuzz::run_handover` for the input format and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = rfma_fuzz::run_handover(data) {
        panic!("property broken: {broken}");
    }
});
