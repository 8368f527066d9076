//! `first_verb(instruction)`: the leading verb of an English instruction, lower-cased, after
//! politeness and question openers ("Please", "Can you", "Could you please") — the measure
//! behind the paper's verb/object chart. NULL when nothing is left.

/// Openers skipped before the verb, longest first.
const OPENERS: &[&str] = &[
    "could you please",
    "can you please",
    "would you please",
    "i would like you to",
    "i want you to",
    "could you",
    "can you",
    "would you",
    "please",
    "kindly",
];

fn first_verb(instruction: &str) -> Option<String> {
    let mut rest = instruction.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    loop {
        let before = rest.len();
        for opener in OPENERS {
            if let Some(r) = rest.strip_prefix(opener) {
                if r.is_empty() || r.starts_with(|c: char| !c.is_alphanumeric()) {
                    rest = r.trim_start_matches(|c: char| !c.is_alphanumeric()).to_string();
                    break;
                }
            }
        }
        if rest.len() == before {
            break;
        }
    }
    let verb: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '-').collect();
    (!verb.is_empty()).then_some(verb)
}

pub fn udf() -> datafusion::logical_expr::ScalarUDF {
    super::string_to_string("first_verb", first_verb)
}

#[cfg(test)]
mod tests {
    use super::first_verb;

    #[test]
    fn verbs() {
        assert_eq!(first_verb("Write a short story about a cat.").as_deref(), Some("write"));
        assert_eq!(first_verb("Please summarize the article").as_deref(), Some("summarize"));
        assert_eq!(first_verb("Could you please explain why").as_deref(), Some("explain"));
        assert_eq!(first_verb("  \"Translate this\"").as_deref(), Some("translate"));
        assert_eq!(first_verb("please"), None);
        assert_eq!(first_verb(""), None);
    }
}
