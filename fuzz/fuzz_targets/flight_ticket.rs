#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver::fuzzing::flight_ticket(data));
