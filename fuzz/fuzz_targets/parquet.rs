#![no_main]
// Any bytes as a parquet shard: no panic, no hang; bad records are rejects.
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::read_all(data, xinstruct_operators::source::Format::Parquet, "parquet");
});
