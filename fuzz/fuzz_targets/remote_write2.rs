#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver::fuzzing::remote_write2_protobuf(data));
