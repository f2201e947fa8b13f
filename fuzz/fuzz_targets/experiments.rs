#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver::fuzzing::experiment_json(data));
