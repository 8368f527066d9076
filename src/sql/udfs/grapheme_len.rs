//! `grapheme_len(text)`: the length in user-perceived characters (extended grapheme
//! clusters), which for Indic and Thai text is shorter than the code-point count that
//! `character_length` gives.

use unicode_segmentation::UnicodeSegmentation;

fn grapheme_len(text: &str) -> i64 {
    text.graphemes(true).count() as i64
}

pub fn udf() -> datafusion::logical_expr::ScalarUDF {
    super::string_to_int("grapheme_len", grapheme_len)
}

#[cfg(test)]
mod tests {
    #[test]
    fn graphemes() {
        assert_eq!(super::grapheme_len("नमस्ते"), 3);
        assert_eq!("नमस्ते".chars().count(), 6);
        assert_eq!(super::grapheme_len(""), 0);
    }
}
