//! Raw bytes -> `Gguf::parse`; on success touch every metadata value and tensor view, and
//! check that writing the parsed file back gives a file that parses to the same content.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_fuzz::check_bytes(data);
});
