//! Integration tests: one binary, a module per area.

mod cli;
mod cluster;
mod common;
mod crash;
mod dedup;
mod diversity;
mod filters;
mod generate;
mod incremental;
mod instruct;
mod interop;
mod reliability;
mod report;
mod s3;
mod settings;
mod sources;
mod sql;
