#![no_main]
// The property is in `xinstruct_operators::fuzzing` (shared with the stable smoke test).
use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use xinstruct_operators::{fuzzing, source::Format};

fuzz_target!(|data: &[u8]| {
    fuzzing::render_template(data);
});
