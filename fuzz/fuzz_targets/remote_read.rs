#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver::fuzzing::remote_read_protobuf(data));
