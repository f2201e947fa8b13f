#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver::fuzzing::exposition_protobuf(data));
