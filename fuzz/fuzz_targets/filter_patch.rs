//! Fuzzes the SCIM filter parser, the PATCH path parser and PATCH application.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scim::fuzzing::filter_and_patch(data);
});
