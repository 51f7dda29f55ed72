//! Fuzzes the formula parser, type checker and evaluator.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rules::formula::fuzz_check(data);
});
