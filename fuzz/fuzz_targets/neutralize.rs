#![no_main]
// Any text: neutralize never panics, is idempotent, and leaves no template marker line.
use libfuzzer_sys::fuzz_target;
use xinstruct_operators::instruct::prompt::{neutralize, neutralize_with, Specials};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (once, _) = neutralize(text);
    assert_eq!(neutralize(&once).0, once, "idempotent");
    assert!(once.lines().all(|l| !l.trim_start().starts_with("###")));
    let specials = Specials::new(["<image_soft_token>".to_string(), "<start_of_turn>".into(), "[INST]".into()]);
    let (with, _) = neutralize_with(text, &specials);
    assert!(!with.contains("<image_soft_token>") && !with.contains("<start_of_turn>"));
});
