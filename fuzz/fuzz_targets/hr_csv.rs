//! Fuzzes the HR CSV path: decoding, header matching, row parsing and quarantine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hr::csv_source::fuzz_check(data);
});
