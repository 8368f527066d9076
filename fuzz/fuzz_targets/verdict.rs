#![no_main]
// Any judge answer: the parser never panics; a label it reads comes with a score in 1..=5.
use libfuzzer_sys::fuzz_target;
use xinstruct_operators::instruct::verdict::parse_evaluation;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let e = parse_evaluation(raw);
    if let Some(score) = e.score {
        assert!((1..=5).contains(&score), "{score} from {raw:?}");
    }
});
