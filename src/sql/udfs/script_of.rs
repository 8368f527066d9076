//! `script_of(text)`: the dominant ISO 15924 script of a text (`Deva`, `Thai`, `Latn`, …);
//! NULL when it has no letters.

use xinstruct_operators::lang_id::script::dominant_script;

fn script_of(text: &str) -> Option<String> {
    dominant_script(text).map(|(s, _)| s.to_string())
}

pub fn udf() -> datafusion::logical_expr::ScalarUDF {
    super::string_to_string("script_of", script_of)
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts() {
        assert_eq!(super::script_of("मानव अधिकार").as_deref(), Some("Deva"));
        assert_eq!(super::script_of("123 ..."), None);
    }
}
