//! `lang_name(code)`: the English name of a language code in any supported form
//! (`hi_Deva`, `hin`, `hi`) — `Hindi`; NULL for codes the table does not know.

use xinstruct_operators::lang_id::codes::LangCode;

fn lang_name(code: &str) -> Option<String> {
    let name = LangCode::parse(code)?.name();
    (!name.is_empty()).then(|| name.to_string())
}

pub fn udf() -> datafusion::logical_expr::ScalarUDF {
    super::string_to_string("lang_name", lang_name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::lang_name("hi_Deva").as_deref(), Some("Hindi"));
        assert_eq!(super::lang_name("swh").as_deref(), Some("Swahili"));
        assert_eq!(super::lang_name("xx_Zzzz"), None);
    }
}
