//! Deterministic checks on a generated instruction, before any judge sees it. Small models
//! answer the reverse prompt with things that are not instructions at all — the prompt echoed
//! back ("Write an English instruction that can take the text as an appropriate answer."), a
//! fragment of the response ("My name is"), a salutation ("Dear Mr. President,"), a sentence
//! cut off by the token budget — and a weak judge happily labels them good. These rules catch
//! them cheaply and say why:
//!
//! * `instruction_truncated`: generation hit its token budget inside the instruction, or the
//!   instruction ends mid-sentence (on a comma, colon or function word).
//! * `not_an_instruction`: a fragment (under three words), a salutation or sign-off, or a
//!   sentence that is neither a question nor a request.
//! * `instruction_echo`: most of its content words come from the stage's own template.
//!
//! Also here: [`strip_markup`] (HTML tags and entities out of an instruction) and
//! [`is_translation_request`] (a request to translate, by its phrasing).

/// A reject reason and its detail.
pub type Verdict = Result<(), (&'static str, String)>;

/// Words that carry no content: left out of the echo overlap, and the words a sentence cannot
/// end on.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "for", "with", "by", "at", "from", "as",
    "is", "are", "was", "were", "be", "this", "that", "these", "those", "it", "its", "their", "his", "her",
    "our", "your", "my", "which", "who", "whose", "than", "into", "such", "can", "could", "will", "would",
    "do", "does", "i", "me", "you", "we", "what", "how", "given",
];

/// Words an instruction cannot end on without being cut off ("…the institutions that").
const DANGLING: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "of",
    "to",
    "that",
    "which",
    "whose",
    "with",
    "its",
    "their",
    "his",
    "her",
    "our",
    "your",
    "my",
    "than",
    "into",
    "such",
    "including",
    "like",
    "between",
    "both",
    "either",
    "whether",
    "because",
    "if",
];

/// Verbs a request starts with (imperative), as users of instruction data write them.
const REQUEST_VERBS: &[&str] = &[
    "write",
    "explain",
    "describe",
    "summarize",
    "summarise",
    "tell",
    "give",
    "list",
    "provide",
    "create",
    "compose",
    "translate",
    "discuss",
    "compare",
    "outline",
    "draft",
    "generate",
    "share",
    "suggest",
    "identify",
    "name",
    "define",
    "analyze",
    "analyse",
    "classify",
    "rewrite",
    "make",
    "find",
    "help",
    "show",
    "recommend",
    "state",
    "present",
    "introduce",
    "prepare",
    "produce",
    "develop",
    "imagine",
    "argue",
    "elaborate",
    "expand",
    "report",
    "detail",
    "evaluate",
    "plan",
    "design",
    "propose",
    "offer",
    "teach",
    "advise",
    "answer",
    "convert",
    "continue",
    "complete",
    "narrate",
    "recount",
    "review",
    "critique",
    "highlight",
    "illustrate",
    "calculate",
    "predict",
    "express",
    "craft",
    "construct",
    "formulate",
    "retell",
    "inform",
    "announce",
    "invite",
    "advertise",
    "promote",
    "reply",
    "respond",
    "choose",
    "select",
    "rank",
    "rate",
    "extract",
    "paraphrase",
    "simplify",
    "note",
    "consider",
    "assume",
    "pretend",
    "act",
    "play",
    "let",
    "clarify",
    "specify",
    "mention",
    "enumerate",
    "brainstorm",
    "debate",
    "justify",
    "assess",
    "examine",
    "investigate",
    "explore",
    "post",
    "read",
    "edit",
    "proofread",
    "correct",
    "fix",
    "solve",
    "draw",
    "sketch",
    "instruct",
    "guide",
    "walk",
    "remind",
    "warn",
    "encourage",
    "congratulate",
    "thank",
    "apologize",
    "persuade",
    "convince",
    "request",
    "ask",
    "cite",
    "quote",
    "contrast",
    "interpret",
    "transcribe",
    "caption",
    "title",
    "tag",
    "label",
];

/// Words that open a question (with or without the question mark).
const QUESTION_WORDS: &[&str] = &[
    "what", "how", "why", "when", "where", "who", "whom", "whose", "which", "is", "are", "was", "were", "do",
    "does", "did", "can", "could", "would", "should", "will", "shall", "may", "might", "has", "have", "had",
    "am",
];

/// Openings of a request that are not imperatives.
const REQUEST_OPENERS: &[&str] = &[
    "i want",
    "i need",
    "i would like",
    "i'd like",
    "i am looking",
    "i'm looking",
    "i wish",
    "help me",
    "let's",
    "let me",
    "you are",
    "as a ",
    "please ",
    "kindly ",
    "in your own words",
    "in a few",
    "in one",
    "in two",
    "in three",
    "using the",
    "based on",
    "according to",
];

/// Openings of a letter or a sign-off: the start or end of a document, not a request.
const SALUTATIONS: &[&str] = &[
    "dear ",
    "hello",
    "hi ",
    "hi,",
    "hey ",
    "hey,",
    "greetings",
    "good morning",
    "good afternoon",
    "good evening",
    "thank you",
    "thanks",
    "best regards",
    "kind regards",
    "regards",
    "sincerely",
    "yours ",
    "welcome to",
    "welcome,",
    "congratulations",
    "to whom it may concern",
    "ladies and gentlemen",
];

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// Whether the instruction reads as a request or a question: a question mark, a question
/// word or request verb opening one of its clauses, or a request opening ("I want…").
pub fn is_request(instruction: &str) -> bool {
    if instruction.contains('?') {
        return true;
    }
    let lower = instruction.to_lowercase();
    if REQUEST_OPENERS.iter().any(|o| lower.starts_with(o)) {
        return true;
    }
    // "In Hindi, write …", "As a teacher: explain …", "You are a guide. Describe …".
    lower.split([',', ';', ':', '.', '!', '(', ')', '-', '—']).any(|clause| {
        let w = words(clause);
        let first = w
            .iter()
            .map(String::as_str)
            .find(|w| !matches!(*w, "please" | "kindly" | "now" | "then" | "also" | "and"));
        first.is_some_and(|f| REQUEST_VERBS.contains(&f) || QUESTION_WORDS.contains(&f))
    })
}

/// Why `instruction` (already cleaned) is not one, if it is not. `hit_budget`: generation
/// stopped at its token budget with nothing cut after the instruction. `templates`: the
/// texts of the prompts the chain uses (reverse, refine), for the echo check.
pub fn check_instruction(instruction: &str, hit_budget: bool, templates: &[&str]) -> Verdict {
    let clip = |s: &str| s.chars().take(120).collect::<String>();
    if hit_budget {
        return Err(("instruction_truncated", format!("token budget reached: {:?}", clip(instruction))));
    }
    let w = words(instruction);
    let lower = instruction.to_lowercase();
    if SALUTATIONS.iter().any(|s| lower.starts_with(s)) {
        return Err(("not_an_instruction", format!("a salutation: {:?}", clip(instruction))));
    }
    if w.len() < 3 {
        return Err((
            "not_an_instruction",
            format!("a fragment of {} words: {:?}", w.len(), clip(instruction)),
        ));
    }
    if let Some(share) = echo_share(&w, instruction, templates) {
        return Err((
            "instruction_echo",
            format!("{:.0}% of its words are the prompt's: {:?}", share * 100.0, clip(instruction)),
        ));
    }
    if !is_request(instruction) {
        return Err(("not_an_instruction", format!("not a request or question: {:?}", clip(instruction))));
    }
    let trimmed = instruction.trim_end();
    let ends_open = trimmed.ends_with([',', ';', ':', '(', '-', '–', '—', '/', '&'])
        || w.last().is_some_and(|l| DANGLING.contains(&l.as_str()))
            && !trimmed.ends_with(['.', '?', '!', '"', ')']);
    if ends_open {
        return Err(("instruction_truncated", format!("ends mid-sentence: {:?}", clip(instruction))));
    }
    Ok(())
}

/// The share of the instruction's content words found in one template, when it is 80% or
/// more (at least three content words), or the instruction appears in a template whole.
fn echo_share(w: &[String], instruction: &str, templates: &[&str]) -> Option<f64> {
    let content: Vec<&str> = w.iter().map(String::as_str).filter(|w| !FUNCTION_WORDS.contains(w)).collect();
    let norm = |s: &str| words(s).join(" ");
    let whole = norm(instruction);
    templates.iter().find_map(|t| {
        let tw: std::collections::HashSet<String> = words(t).into_iter().collect();
        if whole.len() >= 15 && norm(t).contains(&whole) {
            return Some(1.0);
        }
        if content.len() < 3 {
            return None;
        }
        let share = content.iter().filter(|w| tw.contains(**w)).count() as f64 / content.len() as f64;
        (share >= 0.8).then_some(share)
    })
}

/// The instruction without HTML tags (`<strong>…</strong>` → `…`) and with the common
/// entities decoded. Text that only looks like a tag (`a < b`) stays.
pub fn strip_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('>');
        let is_tag = close.is_some_and(|c| {
            let inner = after[..c].trim_start_matches('/');
            c <= 200
                && inner.chars().next().is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '!')
                && !inner.contains('<')
        });
        match (is_tag, close) {
            (true, Some(c)) => {
                out.push(' ');
                rest = &after[c + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether an instruction asks for a translation (`Translate the following paragraph into
/// Turkish.`, `Provide a Swahili translation of the text.`, `What is this in English?`), by
/// its phrasing: a translate verb with an object or a target language, or "translation of".
/// A word that merely starts with "translat" (a question about translators) is not one.
pub fn is_translation_request(instruction: &str) -> bool {
    let w = words(instruction);
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    // What a translation request points at: the text it comes with.
    let deictic = |i: usize| {
        let mut j = i;
        while matches!(at(j), "the" | "this" | "that" | "these" | "those" | "above" | "given") {
            if matches!(at(j), "this" | "these" | "above") && !is_text_noun(at(j + 1)) {
                return true;
            }
            j += 1;
        }
        is_text_noun(at(j)) || at(j) == "it"
    };
    let asks = (0..w.len()).any(|i| match at(i) {
        // "Translate this / the following / it into …", "Please translate into …".
        "translate" => {
            i == 0
                || matches!(at(i - 1), "please" | "and" | "then" | "now" | "kindly" | "also")
                || deictic(i + 1)
                || matches!(at(i + 1), "into" | "to")
        }
        // "a Swahili translation of the text", "the translation of this".
        "translation" => matches!(at(i + 1), "of" | "for") && deictic(i + 2) || at(i + 1) == "into",
        _ => false,
    });
    let lower = instruction.to_lowercase();
    asks || (lower.ends_with("in english?") || lower.ends_with("into english"))
        && w.first().is_some_and(|f| matches!(f.as_str(), "what" | "say" | "render" | "how"))
}

fn is_text_noun(w: &str) -> bool {
    matches!(
        w,
        "text"
            | "passage"
            | "paragraph"
            | "paragraphs"
            | "following"
            | "above"
            | "article"
            | "document"
            | "sentence"
            | "sentences"
            | "words"
            | "phrase"
            | "story"
            | "poem"
            | "response"
            | "content"
            | "message"
            | "letter"
            | "page"
            | "post"
            | "excerpt"
            | "lines"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruct::prompt::{REFINE_DEFAULT, REVERSE_FEWSHOT, REVERSE_PAPER};

    const TEMPLATES: &[&str] = &[REVERSE_PAPER, REVERSE_FEWSHOT, REFINE_DEFAULT];

    fn reason(instruction: &str) -> &'static str {
        match check_instruction(instruction, false, TEMPLATES) {
            Ok(()) => "ok",
            Err((r, _)) => r,
        }
    }

    #[test]
    fn what_the_demo_kept_is_caught() {
        // Kept as good on the demo before these rules (issue 17).
        for (text, want) in [
            ("The following text describes a candidate output.", "instruction_echo"),
            (
                "Write an English instruction that can take the text as an appropriate answer.",
                "instruction_echo",
            ),
            (
                "Write a better English instruction that can take the given text as an appropriate answer.",
                "instruction_echo",
            ),
            ("Tell me about Helsinki: where it is and how many people live there.", "instruction_echo"),
            ("How do I cook rice properly?", "instruction_echo"),
            ("My name is", "not_an_instruction"),
            ("Dear Mr. President,", "not_an_instruction"),
            ("Hello everyone and welcome", "not_an_instruction"),
            ("Thank you for reading this article.", "not_an_instruction"),
            ("The right to education in Tanzania.", "not_an_instruction"),
            ("Everyone has the right to rest and leisure.", "not_an_instruction"),
            (
                "Write an essay covering the history of the rights it lists, the institutions that",
                "instruction_truncated",
            ),
            ("Describe the main provisions of the declaration, including", "instruction_truncated"),
            ("Summarize the following text:", "instruction_truncated"),
            ("Ok", "not_an_instruction"),
        ] {
            assert_eq!(reason(text), want, "{text}");
        }
    }

    #[test]
    fn real_instructions_pass() {
        for text in [
            "Write a short article in Swahili about the right to rest and leisure.",
            "What rights does every person have at work?",
            "Explain the right to education.",
            "In Hindi, describe how the government should be elected.",
            "As a journalist, write a news report about the flood in Jakarta.",
            "Tell me about the history of Helsinki.",
            "Write an English text about the right to education.",
            "Give me a recipe for pad thai",
            "I want to know how elections work in Turkey.",
            "Please list the freedoms mentioned in the declaration.",
            "Could you summarize the rules of the tournament",
            "What is this text about?",
            "You are a tour guide. Describe the old town of Istanbul.",
            "Compose a poem about the sea and the people who live by it.",
        ] {
            assert_eq!(reason(text), "ok", "{text}");
        }
    }

    #[test]
    fn the_token_budget_means_truncated() {
        let r = check_instruction("Write a complete essay on the subject", true, TEMPLATES);
        assert_eq!(r.unwrap_err().0, "instruction_truncated");
    }

    #[test]
    fn markup_is_stripped() {
        assert_eq!(
            strip_markup("<strong>Explain</strong> the <a href=\"x\">right</a> to rest."),
            "Explain the right to rest."
        );
        assert_eq!(strip_markup("Is 3 < 4 and 5 > 2?"), "Is 3 < 4 and 5 > 2?");
        assert_eq!(strip_markup("Tom &amp; Jerry&nbsp;facts"), "Tom & Jerry facts");
        assert_eq!(strip_markup("<br/><p></p>"), "");
    }

    #[test]
    fn translation_requests_are_recognized_by_phrasing() {
        for yes in [
            "Translate the following paragraph into Turkish.",
            "Provide a Swahili translation of the text.",
            "Please translate this into Hindi.",
            "Translate into Thai: the right to rest.",
            "Give an English translation of the passage.",
            "What is the translation of this text?",
            "Translate it to Vietnamese",
            "What is this in English?",
        ] {
            assert!(is_translation_request(yes), "{yes}");
        }
        for no in [
            "Explain the right to education.",
            "What is transparency in government?",
            "Describe the work of a translator at the United Nations.",
            "Why are translations of the Quran debated?",
            "Write about the translational research institute in Helsinki.",
            "How many languages has the declaration been translated into?",
        ] {
            assert!(!is_translation_request(no), "{no}");
        }
    }
}
