#![no_main]
// Any template text and values: rendering never panics and never expands slots inside values.
use libfuzzer_sys::fuzz_target;
use xinstruct_operators::instruct::prompt::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (template, value) = s.split_once('\u{0}').unwrap_or((s, "{text}"));
    let t = Template::new("fuzz", 1, template);
    let _ = t.slots();
    let out = t.render(&[("text", value), ("instruction", value), ("language", "Finnish")]);
    if !template.contains('{') {
        assert_eq!(out, template);
    }
});
