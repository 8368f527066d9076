//! Reading an evaluator's verdict: the paper's good / flawed / bad label, a 1–5 score and a
//! reason, from whatever the judge wrote — a JSON object (structured output), `Label:` /
//! `Score:` lines (with markdown), the few-shot `good, 5. reason` form, or prose ("I would rate
//! this flawed, 3").
//!
//! Why so much care: the label decides what becomes training data, so a misread verdict is
//! worse than none. Negations count ("not good", "not bad, but vague"), score scales are
//! normalized to 1–5 (1–10, x/10, x out of 5, percentages), and a label that contradicts its
//! score is [`EvalIssue::Inconsistent`] — retried, then `unknown`, never good.

use serde::{Deserialize, Serialize};

/// The paper's three levels; `Unknown` when the evaluator's output cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Good,
    Flawed,
    Bad,
    Unknown,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Good => "good",
            Label::Flawed => "flawed",
            Label::Bad => "bad",
            Label::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Label {
        match s {
            "good" => Label::Good,
            "flawed" => Label::Flawed,
            "bad" => Label::Bad,
            _ => Label::Unknown,
        }
    }

    /// The scores a judge may give with this label: a `good` with score 1 is a contradiction.
    fn scores(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Label::Good => 4..=5,
            Label::Flawed => 2..=4,
            Label::Bad => 1..=2,
            Label::Unknown => 1..=5,
        }
    }

    /// The label a score alone stands for.
    fn of_score(score: u8) -> Label {
        match score {
            4.. => Label::Good,
            3 => Label::Flawed,
            _ => Label::Bad,
        }
    }
}

/// Why a verdict is `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalIssue {
    /// Nothing that reads as a label or a score (also the answer format echoed back).
    Unreadable,
    /// The label contradicts the score, or a negated label is the one given.
    Inconsistent,
    /// The judge declined to answer.
    Refusal,
}

impl EvalIssue {
    /// The reason code in stats and rejects.
    pub fn reason(self) -> &'static str {
        match self {
            EvalIssue::Unreadable => "eval_unreadable",
            EvalIssue::Inconsistent => "eval_inconsistent",
            EvalIssue::Refusal => "eval_refusal",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub label: Label,
    /// 1–5 when the evaluator gave one (other scales normalized).
    pub score: Option<u8>,
    pub reason: String,
    /// Set exactly when `label` is `Unknown`.
    pub issue: Option<EvalIssue>,
}

impl Evaluation {
    fn unknown(issue: EvalIssue, score: Option<u8>, reason: String) -> Evaluation {
        Evaluation { label: Label::Unknown, score, reason, issue: Some(issue) }
    }
}

/// How a verdict ranks against another: label first, then score. `Unknown` ranks lowest, so
/// refinement never trades a readable verdict for an unreadable one.
pub fn verdict_rank(label: Label, score: Option<u8>) -> (u8, u8) {
    let l = match label {
        Label::Good => 3,
        Label::Flawed => 2,
        Label::Bad => 1,
        Label::Unknown => 0,
    };
    (l, score.unwrap_or(0))
}

/// The JSON schema a structured-output evaluator answers with: the reason first (so the model
/// reasons before it commits), then the label, then the score.
pub fn verdict_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 300},
            "label": {"type": "string", "enum": ["good", "flawed", "bad"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5}
        },
        "required": ["reason", "label", "score"],
        "additionalProperties": false
    })
}

// ---------------------------------------------------------------------------------------------
// Lexing: words (lowercase), numbers with their scale, key markers (`label:`), line breaks.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    /// A number; `scale` is the top of its scale when written (`/10`, `out of 5`, `%` → 100);
    /// `range` when it is the answer format (`1-5`, `1 to 5`), not a score.
    Num {
        value: f64,
        scale: Option<f64>,
        range: bool,
    },
    Newline,
    /// Separators that end a clause (`,` `.` `;` `!` `?` `:` `|` `/` parentheses …).
    Sym(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Byte span in the original text.
    start: usize,
    end: usize,
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c == '\n' {
            out.push(Token { tok: Tok::Newline, start, end: start + 1 });
            i += 1;
        } else if c.is_alphabetic() {
            let mut j = i;
            // Apostrophes inside words keep "isn't" whole.
            while j < chars.len()
                && (chars[j].1.is_alphanumeric()
                    || (matches!(chars[j].1, '\'' | '’')
                        && chars.get(j + 1).is_some_and(|(_, n)| n.is_alphabetic())))
            {
                j += 1;
            }
            let word = text[start..end_of(j)].to_lowercase().replace('’', "'");
            out.push(Token { tok: Tok::Word(word), start, end: end_of(j) });
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len()
                && (chars[j].1.is_ascii_digit()
                    || (chars[j].1 == '.' && chars.get(j + 1).is_some_and(|(_, n)| n.is_ascii_digit())))
            {
                j += 1;
            }
            let value: f64 = text[start..end_of(j)].parse().unwrap_or(f64::NAN);
            let (scale, range, k) = number_suffix(&chars, j);
            out.push(Token { tok: Tok::Num { value, scale, range }, start, end: end_of(k) });
            i = k;
        } else if c.is_whitespace() || matches!(c, '*' | '_' | '`' | '#' | '"' | '\'' | '“' | '”') {
            // Markdown emphasis, headings and quotes carry no meaning here.
            i += 1;
        } else {
            out.push(Token { tok: Tok::Sym(c), start, end: start + c.len_utf8() });
            i += 1;
        }
    }
    out
}

/// What follows a number at `j`: its scale (`/ 10`, `out of 5`, `%`), or a range (`-5`,
/// `to 5`: the answer format). Returns (scale, range, index after what was consumed).
fn number_suffix(chars: &[(usize, char)], j: usize) -> (Option<f64>, bool, usize) {
    let skip_ws = |mut k: usize| {
        while k < chars.len() && chars[k].1 == ' ' {
            k += 1;
        }
        k
    };
    let digits = |k: usize| -> Option<(f64, usize)> {
        let mut e = k;
        while e < chars.len() && chars[e].1.is_ascii_digit() {
            e += 1;
        }
        let s: String = chars[k.min(e)..e].iter().map(|(_, c)| *c).collect();
        s.parse().ok().map(|v| (v, e))
    };
    let word_at = |k: usize, w: &str| {
        let s: String =
            chars[k.min(chars.len())..].iter().take(w.len()).map(|(_, c)| c.to_ascii_lowercase()).collect();
        s == w
    };
    let k = skip_ws(j);
    if k < chars.len() && chars[k].1 == '%' {
        return (Some(100.0), false, k + 1);
    }
    if k < chars.len() && chars[k].1 == '/' {
        if let Some((v, e)) = digits(skip_ws(k + 1)) {
            return (Some(v), false, e);
        }
    }
    if k < chars.len() && matches!(chars[k].1, '-' | '–' | '—') {
        if let Some((_, e)) = digits(skip_ws(k + 1)) {
            return (None, true, e);
        }
    }
    if word_at(k, "to ") {
        if let Some((_, e)) = digits(skip_ws(k + 3)) {
            return (None, true, e);
        }
    }
    if word_at(k, "out of ") {
        if let Some((v, e)) = digits(skip_ws(k + 7)) {
            return (Some(v), false, e);
        }
    }
    // `(out of 5)`.
    if k < chars.len() && chars[k].1 == '(' && word_at(skip_ws(k + 1), "out of ") {
        let at = skip_ws(k + 1) + 7;
        if let Some((v, e)) = digits(skip_ws(at)) {
            let close = skip_ws(e);
            let after = if close < chars.len() && chars[close].1 == ')' { close + 1 } else { e };
            return (Some(v), false, after);
        }
    }
    (None, false, j)
}

/// A number as a 1–5 score. Without a written scale, 1–5 is taken as is, 6–10 as a 10-point
/// scale and 11–100 as a percentage (a judge that says "Score: 9" or "85" uses those).
fn normalize_score(value: f64, scale: Option<f64>) -> Option<u8> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let top = match scale {
        Some(s) if s > 0.0 && value <= s => s,
        Some(_) => return None,
        None if value <= 5.0 => 5.0,
        None if value <= 10.0 => 10.0,
        None if value <= 100.0 => 100.0,
        None => return None,
    };
    if top == 5.0 {
        return Some(value.round().clamp(1.0, 5.0) as u8);
    }
    // Percentages and 0-based scales start at 0; 10-point ones at 1.
    let bottom = if top == 10.0 { 1.0 } else { 0.0 };
    let v = 1.0 + (value.max(bottom) - bottom) / (top - bottom) * 4.0;
    Some(v.round().clamp(1.0, 5.0) as u8)
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.

fn label_word(w: &str) -> Option<Label> {
    Some(match w {
        "good" | "excellent" | "great" | "perfect" | "acceptable" | "appropriate" | "correct" | "ok"
        | "okay" | "suitable" | "relevant" => Label::Good,
        "flawed" | "partially" | "partial" | "vague" | "mediocre" | "imperfect" | "fair" | "mixed"
        | "incomplete" => Label::Flawed,
        "bad" | "poor" | "wrong" | "unrelated" | "irrelevant" | "inappropriate" | "incorrect"
        | "unacceptable" | "mismatched" | "terrible" => Label::Bad,
        _ => return None,
    })
}

fn is_negation(w: &str) -> bool {
    matches!(
        w,
        "not"
            | "no"
            | "never"
            | "neither"
            | "nor"
            | "hardly"
            | "barely"
            | "isn't"
            | "aren't"
            | "wasn't"
            | "weren't"
            | "doesn't"
            | "don't"
            | "didn't"
            | "cannot"
            | "can't"
            | "isnt"
            | "nothing"
            | "without"
    )
}

/// Words a negation may reach across: "not a good", "not very good", "isn't really bad".
fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "a" | "an"
            | "the"
            | "very"
            | "really"
            | "particularly"
            | "entirely"
            | "quite"
            | "so"
            | "too"
            | "that"
            | "as"
            | "at"
            | "all"
            | "overall"
            | "exactly"
            | "fully"
            | "completely"
            | "be"
            | "is"
            | "it"
            | "this"
    )
}

/// Keys whose value is a label, a score, or a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Label,
    Score,
    Reason,
}

fn key_word(w: &str) -> Option<Key> {
    Some(match w {
        "label" | "verdict" | "judgement" | "judgment" | "rating" | "quality" | "classification"
        | "decision" | "assessment" | "grade" | "answer" => Key::Label,
        "score" | "points" => Key::Score,
        "reason" | "reasoning" | "explanation" | "rationale" | "justification" | "comment" | "why"
        | "analysis" => Key::Reason,
        _ => return None,
    })
}

const REFUSALS: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "sorry, i",
    "i cannot",
    "i can't",
    "i can not",
    "as an ai",
    "i am unable",
    "i'm unable",
    "i am not able",
    "i won't",
    "i will not",
];

// ---------------------------------------------------------------------------------------------
// Parsing.

/// What one region of the answer says about the label: the affirmed labels in order and the
/// ones negated ("not good").
#[derive(Default, Debug)]
struct Mentions {
    affirmed: Vec<(Label, usize)>,
    negated: Vec<(Label, usize)>,
}

impl Mentions {
    fn negated_labels(&self) -> Vec<Label> {
        self.negated.iter().map(|n| n.0).collect()
    }

    /// The last label word, affirmed or negated: where a score would follow it.
    fn last_at(&self) -> Option<usize> {
        self.affirmed.iter().chain(&self.negated).map(|m| m.1).max()
    }
}

fn mentions(tokens: &[Token]) -> Mentions {
    let mut m = Mentions::default();
    for (i, t) in tokens.iter().enumerate() {
        let Tok::Word(w) = &t.tok else { continue };
        let Some(label) = label_word(w) else { continue };
        // A negation up to three words back, across fillers only ("not a very good").
        let mut negated = false;
        let mut k = i;
        for _ in 0..4 {
            if k == 0 {
                break;
            }
            k -= 1;
            match &tokens[k].tok {
                Tok::Word(p) if is_negation(p) => {
                    negated = true;
                    break;
                }
                Tok::Word(p) if is_filler(p) => continue,
                // "neither good nor bad": `nor` negates the second one too.
                _ => break,
            }
        }
        // "partially correct" is one flawed verdict, not a good one.
        if label == Label::Good
            && i > 0
            && matches!(&tokens[i - 1].tok, Tok::Word(p) if label_word(p) == Some(Label::Flawed))
        {
            continue;
        }
        if negated {
            m.negated.push((label, i));
        } else {
            m.affirmed.push((label, i));
        }
    }
    m
}

/// The score in a region: the first number that is not the answer format.
fn first_score(tokens: &[Token]) -> Option<u8> {
    tokens.iter().find_map(|t| match t.tok {
        Tok::Num { value, scale, range: false } => normalize_score(value, scale),
        _ => None,
    })
}

/// A keyed region: the key, and the tokens of its value (up to the next key or line break).
struct Section {
    key: Key,
    value: std::ops::Range<usize>,
}

fn sections(tokens: &[Token]) -> Vec<Section> {
    let mut marks: Vec<(usize, Key, usize)> = Vec::new(); // (key token, key, value start)
    let mut i = 0;
    while i < tokens.len() {
        if let Tok::Word(w) = &tokens[i].tok {
            if let Some(key) = key_word(w) {
                // `score:`, `score =`, `score is`, `score of`, and `final score:`.
                let next = tokens.get(i + 1).map(|t| &t.tok);
                let is_mark = match next {
                    Some(Tok::Sym(':' | '=' | '-' | '—' | '–')) => Some(i + 2),
                    Some(Tok::Word(n)) if key == Key::Score && matches!(n.as_str(), "is" | "of") => {
                        Some(i + 2)
                    }
                    Some(Tok::Num { .. }) if key == Key::Score => Some(i + 1),
                    Some(Tok::Word(n)) if key == Key::Label && n == "is" => Some(i + 2),
                    _ => None,
                };
                if let Some(start) = is_mark {
                    marks.push((i, key, start));
                    i = start;
                    continue;
                }
            }
        }
        i += 1;
    }
    let mut out = Vec::new();
    for (n, &(_, key, start)) in marks.iter().enumerate() {
        let next_key = marks.get(n + 1).map_or(tokens.len(), |m| m.0);
        // A value ends at the line break; a reason may run over lines until the next key.
        let line_end = if key == Key::Reason {
            next_key
        } else {
            (start..next_key).find(|&j| tokens[j].tok == Tok::Newline).unwrap_or(next_key)
        };
        // `Label: good, Score: 4` on one line: the value stops at the next key either way.
        out.push(Section { key, value: start..line_end.min(next_key) });
    }
    out
}

fn text_of(raw: &str, tokens: &[Token], range: std::ops::Range<usize>) -> String {
    if range.is_empty() {
        return String::new();
    }
    let (s, e) = (tokens[range.start].start, tokens[range.end - 1].end);
    raw[s..e].trim().trim_end_matches(['*', '_']).trim().to_string()
}

fn json_verdict(raw: &str) -> Option<Evaluation> {
    let (open, close) = (raw.find('{')?, raw.rfind('}')?);
    if close <= open {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&raw[open..=close]).ok()?;
    let obj = v.as_object()?;
    let field = |k: Key| {
        obj.iter().find(|(name, _)| key_word(&name.to_lowercase()) == Some(k)).map(|(_, v)| v.clone())
    };
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let label_text = field(Key::Label).map(|v| as_text(&v)).unwrap_or_default();
    let score_text = field(Key::Score).map(|v| as_text(&v)).unwrap_or_default();
    let reason = field(Key::Reason).map(|v| as_text(&v)).unwrap_or_default();
    let label_tokens = lex(&label_text);
    let m = mentions(&label_tokens);
    let mut score = first_score(&lex(&score_text));
    // `"rating": 4` is a score under a label key.
    if score.is_none() && m.affirmed.is_empty() {
        score = first_score(&label_tokens);
    }
    Some(decide(m.affirmed.first().map(|a| a.0), true, &m.negated_labels(), score, reason))
}

/// Puts label, score and negations together. `label_explicit`: the label came from a key or
/// the answer's first word (a verdict), not from a word somewhere in prose.
fn decide(
    label: Option<Label>,
    label_explicit: bool,
    negated: &[Label],
    score: Option<u8>,
    reason: String,
) -> Evaluation {
    let label = match (label, score) {
        (Some(l), Some(s)) if !l.scores().contains(&s) => {
            if label_explicit {
                return Evaluation::unknown(EvalIssue::Inconsistent, Some(s), reason);
            }
            // A label word in prose ("gives good advice, but … Score: 1") yields to a score.
            Label::of_score(s)
        }
        (Some(l), _) => l,
        (None, Some(s)) => Label::of_score(s),
        (None, None) => {
            // "neither good nor bad": what is left when two are ruled out.
            let left: Vec<Label> = [Label::Good, Label::Flawed, Label::Bad]
                .into_iter()
                .filter(|l| !negated.contains(l))
                .collect();
            match left.as_slice() {
                [one] => *one,
                _ if negated.contains(&Label::Good) && negated.contains(&Label::Bad) => Label::Flawed,
                _ => return Evaluation::unknown(EvalIssue::Unreadable, None, reason),
            }
        }
    };
    if negated.contains(&label) {
        return Evaluation::unknown(EvalIssue::Inconsistent, score, reason);
    }
    Evaluation { label, score, reason, issue: None }
}

/// Reads an evaluator's answer; see the module doc. Order of trust: a JSON object, then keyed
/// lines (`Label:`, `Score:`, `Reason:`), then a verdict-first answer (`good, 5. reason`), then
/// prose, where the last affirmed label is the verdict (reason-first answers end with it).
pub fn parse_evaluation(raw: &str) -> Evaluation {
    if let Some(e) = json_verdict(raw) {
        if e.issue != Some(EvalIssue::Unreadable) {
            return e;
        }
    }
    let lower = raw.to_lowercase();
    let squeezed: String = lower.chars().filter(|c| !c.is_whitespace() && *c != '*').collect();
    // A model that echoes the answer format (`good|flawed|bad`, `good/flawed/bad`) said nothing.
    let echo =
        ["good|flawed", "flawed|bad", "good/flawed", "flawed/bad", "good,flawed,orbad", "good,flawedorbad"]
            .iter()
            .any(|p| squeezed.contains(p));
    let tokens = lex(raw);
    let secs = sections(&tokens);
    let section = |k: Key| secs.iter().find(|s| s.key == k);

    let reason_of = |label_end: Option<usize>| -> String {
        if let Some(s) = section(Key::Reason) {
            return text_of(raw, &tokens, s.value.clone());
        }
        // Reason-first without a key: the text before the first key.
        if let Some(first) = secs.first() {
            let key_at = (0..first.value.start).rev().find(|&j| matches!(tokens[j].tok, Tok::Word(_)));
            if let Some(k) = key_at {
                let t = text_of(raw, &tokens, 0..k);
                if !t.is_empty() {
                    return t;
                }
            }
        }
        // `good, 5. The response explains …`: what follows the verdict on its line.
        let from = label_end.unwrap_or(0);
        let mut j = from;
        while j < tokens.len() && !matches!(tokens[j].tok, Tok::Word(_) | Tok::Newline) {
            j += 1;
        }
        let line_end = (j..tokens.len()).find(|&k| tokens[k].tok == Tok::Newline).unwrap_or(tokens.len());
        text_of(raw, &tokens, j..line_end)
    };

    let all = mentions(&tokens);
    let near_score = |at: usize| -> Option<u8> {
        // The score right after a label word: `good, 5`, `good (4/5)`, `flawed with 3`.
        tokens[at + 1..].iter().take(4).take_while(|t| t.tok != Tok::Newline).find_map(|t| match t.tok {
            Tok::Num { value, scale, range: false } => normalize_score(value, scale),
            _ => None,
        })
    };

    // Keyed answers.
    let label_sec = section(Key::Label);
    let score_sec = section(Key::Score);
    if label_sec.is_some() || score_sec.is_some() {
        let (mut label, mut explicit, mut negated, mut score_from_label) = (None, true, Vec::new(), None);
        if let Some(s) = label_sec {
            let m = mentions(&tokens[s.value.clone()]);
            let distinct: std::collections::BTreeSet<Label> = m.affirmed.iter().map(|a| a.0).collect();
            if distinct.len() == 1 && !echo {
                label = Some(m.affirmed[0].0);
            }
            negated = m.negated_labels();
            // `Rating: 4/5`, `Label: good (4)`.
            score_from_label = first_score(&tokens[s.value.clone()]);
        } else if !echo {
            // Only a score is keyed: a label word in the prose is a weaker signal.
            label = all.affirmed.last().map(|a| a.0);
            explicit = false;
            negated = all.negated_labels();
        }
        let score = score_sec.and_then(|s| first_score(&tokens[s.value.clone()])).or(score_from_label);
        if label.is_some() || score.is_some() || !negated.is_empty() {
            let reason = reason_of(label_sec.map(|s| s.value.end));
            return decide(label, explicit, &negated, score, reason);
        }
    }
    if echo {
        return Evaluation::unknown(EvalIssue::Unreadable, None, String::new());
    }

    // Verdict first: the answer's first word is a label (`good, 5. …`, `**Bad** — …`).
    let first_word = tokens.iter().position(|t| matches!(t.tok, Tok::Word(_)));
    let lead = first_word.and_then(|i| match &tokens[i].tok {
        Tok::Word(w) => label_word(w).map(|l| (l, i)),
        _ => None,
    });
    let lead = lead.filter(|&(_, i)| tokens[..i].iter().all(|t| !matches!(t.tok, Tok::Num { .. })));
    if let Some((label, at)) = lead {
        let score = near_score(at).or_else(|| fraction_anywhere(&tokens));
        return decide(Some(label), true, &all.negated_labels(), score, reason_of(Some(at + 1)));
    }

    // Prose.
    let last = all.affirmed.last().copied();
    let after_label = all.last_at().and_then(near_score);
    let score = after_label.or_else(|| fraction_anywhere(&tokens)).or_else(|| {
        // A lone number is a score: "4", "5."
        let words = tokens.iter().filter(|t| matches!(t.tok, Tok::Word(_))).count();
        if words == 0 {
            first_score(&tokens)
        } else {
            None
        }
    });
    if last.is_none() && score.is_none() && all.negated.is_empty() {
        let trimmed = lower.trim_start();
        if REFUSALS.iter().any(|r| trimmed.starts_with(r) || trimmed.contains(&format!(". {r}"))) {
            return Evaluation::unknown(EvalIssue::Refusal, None, raw.trim().to_string());
        }
        return Evaluation::unknown(EvalIssue::Unreadable, None, String::new());
    }
    // A label word with its score right after it ("bad, 1") is a verdict; one in passing is not.
    let explicit = last.is_some_and(|(_, at)| near_score(at).is_some());
    let reason = reason_of(all.last_at().map(|at| at + 1));
    decide(last.map(|l| l.0), explicit, &all.negated_labels(), score, reason)
}

/// A score written with its scale anywhere (`5/5`, `8 out of 10`, `80%`).
fn fraction_anywhere(tokens: &[Token]) -> Option<u8> {
    tokens.iter().find_map(|t| match t.tok {
        Tok::Num { value, scale: Some(scale), range: false } => normalize_score(value, Some(scale)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::*;

    /// Answers people and models write, and what they mean: (answer, label, score). `Unknown`
    /// rows check the issue through [`issues`].
    const TABLE: &[(&str, Label, Option<u8>)] = &[
        // The few-shot format and plain labels.
        ("good", Good, None),
        ("Good.", Good, None),
        ("BAD, 1", Bad, Some(1)),
        ("good, 5. The response explains how to cook rice.", Good, Some(5)),
        ("flawed, 3. Too vague.", Flawed, Some(3)),
        ("bad, 1. The response is about Helsinki.", Bad, Some(1)),
        ("good (4/5) - matches well", Good, Some(4)),
        ("**Good** — the response matches. Score: 4/5", Good, Some(4)),
        // Keyed lines, in either order, with markdown.
        ("Label: good\nScore: 4\nReason: It fits.", Good, Some(4)),
        ("Reason: The text answers the question.\nLabel: good\nScore: 5", Good, Some(5)),
        ("**Label:** Flawed\n**Score:** 3/5", Flawed, Some(3)),
        ("Verdict: BAD\nScore: 1", Bad, Some(1)),
        ("Label: good, Score: 4, Reason: fits", Good, Some(4)),
        ("Rating: 4/5", Good, Some(4)),
        ("Rating: good", Good, None),
        ("Label: partially correct", Flawed, None),
        ("Score: 4", Good, Some(4)),
        ("Score: 2", Bad, Some(2)),
        ("Score: 3", Flawed, Some(3)),
        ("Score: 4 (out of 5)", Good, Some(4)),
        ("Score: 4 out of 5", Good, Some(4)),
        ("Score: 4.5", Good, Some(5)),
        ("The response explains the right.\nLabel: good\nScore: 5", Good, Some(5)),
        ("Reasoning: the text is fine.\nLabel: good\nScore: 4", Good, Some(4)),
        ("Explanation: off topic\nVerdict: bad (1/5)", Bad, Some(1)),
        ("The label is good and the score is 4.", Good, Some(4)),
        ("Final score: 2\nThe instruction asks for a poem.", Bad, Some(2)),
        // Other scales.
        ("Score: 10 — excellent", Good, Some(5)),
        ("Score: 9", Good, Some(5)),
        ("Score: 8/10", Good, Some(4)),
        ("7 out of 10", Good, Some(4)),
        ("Score: 6/10", Flawed, Some(3)),
        ("Score: 3 out of 10", Bad, Some(2)),
        ("Score: 1/10", Bad, Some(1)),
        ("80%", Good, Some(4)),
        ("Score: 50%", Flawed, Some(3)),
        ("Score: 85", Good, Some(4)),
        ("Score: 0/5", Bad, Some(1)),
        ("Good pair! 5/5", Good, Some(5)),
        // Prose.
        ("I would rate this good, 4", Good, Some(4)),
        ("I would rate this pair as flawed with a score of 3.", Flawed, Some(3)),
        ("The pair is bad because it is unrelated.", Bad, None),
        ("The instruction is vague.", Flawed, None),
        ("Overall it is excellent.", Good, None),
        ("The response gives good advice, but it is about another topic. Score: 1", Bad, Some(1)),
        ("The response is fine but the instruction is too vague. Overall: flawed, 3", Flawed, Some(3)),
        ("4", Good, Some(4)),
        ("1.", Bad, Some(1)),
        // Negations.
        ("not good, 2", Bad, Some(2)),
        ("This is not a good example of an instruction. bad, 1.", Bad, Some(1)),
        ("not bad, but too vague", Flawed, None),
        ("neither good nor bad", Flawed, None),
        ("The instruction isn't good: it asks for a poem. Label: bad. Score: 1.", Bad, Some(1)),
        ("It is not very good. Score: 2/5", Bad, Some(2)),
        ("The response does not answer the instruction. bad, 2", Bad, Some(2)),
        // JSON (structured output).
        (r#"{"reason": "It fits.", "label": "good", "score": 4}"#, Good, Some(4)),
        (r#"{"label":"bad","score":"1/5","reason":"off topic"}"#, Bad, Some(1)),
        ("```json\n{\"label\": \"flawed\", \"score\": 3}\n```", Flawed, Some(3)),
        (r#"{"Label": "Good", "Score": 9}"#, Good, Some(5)),
        (r#"{"verdict": "not good", "score": 2}"#, Bad, Some(2)),
        (r#"{"rating": 5}"#, Good, Some(5)),
        // Contradictions, echoes, refusals, nothing.
        ("Label: good / Score: 1", Unknown, Some(1)),
        ("Label: good\nScore: 1", Unknown, Some(1)),
        ("good, 1. It does not match.", Unknown, Some(1)),
        ("Label: bad\nScore: 5", Unknown, Some(5)),
        ("Label: flawed\nScore: 5", Unknown, Some(5)),
        (r#"{"label": "good", "score": 2}"#, Unknown, Some(2)),
        ("not good. Score: 5", Unknown, Some(5)),
        ("Label: not good", Unknown, None),
        (" good|flawed|bad\nScore: 1-5\nReason: one sentence\n\nLabel: good|flawed|bad", Unknown, None),
        ("Label: good/flawed/bad", Unknown, None),
        ("Score: 1 to 5", Unknown, None),
        ("", Unknown, None),
        ("   \n\n", Unknown, None),
        ("I cannot tell.\n\n", Unknown, None),
        ("I'm sorry, but I can't help with that.", Unknown, None),
        ("As an AI language model, I do not have opinions.", Unknown, None),
        ("N/A", Unknown, None),
        ("### Instruction:\nWrite a poem.", Unknown, None),
    ];

    fn issue_of(raw: &str) -> Option<EvalIssue> {
        parse_evaluation(raw).issue
    }

    #[test]
    fn the_table_reads_as_people_mean_it() {
        assert!(TABLE.len() >= 50, "{}", TABLE.len());
        let mut wrong = Vec::new();
        for &(raw, label, score) in TABLE {
            let e = parse_evaluation(raw);
            if (e.label, e.score) != (label, score) {
                wrong.push(format!(
                    "{raw:?}: got ({:?}, {:?}), want ({label:?}, {score:?})",
                    e.label, e.score
                ));
            }
            assert_eq!(e.issue.is_some(), e.label == Unknown, "{raw:?}");
        }
        assert!(wrong.is_empty(), "{} of {} misread:\n{}", wrong.len(), TABLE.len(), wrong.join("\n"));
    }

    #[test]
    fn unknown_verdicts_say_why() {
        assert_eq!(issue_of("Label: good / Score: 1"), Some(EvalIssue::Inconsistent));
        assert_eq!(issue_of("not good. Score: 5"), Some(EvalIssue::Inconsistent));
        assert_eq!(issue_of("I'm sorry, but I can't help with that."), Some(EvalIssue::Refusal));
        assert_eq!(issue_of(""), Some(EvalIssue::Unreadable));
        assert_eq!(issue_of("Label: good|flawed|bad"), Some(EvalIssue::Unreadable));
        assert_eq!(issue_of("good, 4"), None);
    }

    #[test]
    fn reasons_are_read_whole() {
        let r = |raw: &str| parse_evaluation(raw).reason;
        assert_eq!(r("Reasoning: the text is fine.\nLabel: good\nScore: 4"), "the text is fine.");
        assert_eq!(
            r("good, 5. The response explains how to cook rice."),
            "The response explains how to cook rice."
        );
        assert_eq!(r("flawed, 3. Too vague."), "Too vague.");
        assert_eq!(
            r("The response lists the rights.\nLabel: good\nScore: 5"),
            "The response lists the rights."
        );
        assert_eq!(
            r("Label: bad\nScore: 1\nReason: It is about Helsinki,\nnot the sea."),
            "It is about Helsinki,\nnot the sea."
        );
        assert_eq!(r(r#"{"reason": "It fits.", "label": "good", "score": 4}"#), "It fits.");
    }

    #[test]
    fn scores_normalize_to_five_points() {
        assert_eq!(normalize_score(10.0, Some(10.0)), Some(5));
        assert_eq!(normalize_score(1.0, Some(10.0)), Some(1));
        assert_eq!(normalize_score(5.0, Some(10.0)), Some(3));
        assert_eq!(normalize_score(100.0, Some(100.0)), Some(5));
        assert_eq!(normalize_score(0.0, Some(100.0)), Some(1));
        assert_eq!(normalize_score(6.0, Some(5.0)), None, "above its own scale");
        assert_eq!(normalize_score(500.0, None), None);
    }

    #[test]
    fn verdicts_rank_label_first() {
        assert!(verdict_rank(Good, Some(4)) > verdict_rank(Flawed, Some(4)));
        assert!(verdict_rank(Flawed, Some(3)) > verdict_rank(Flawed, Some(2)));
        assert!(verdict_rank(Bad, Some(1)) > verdict_rank(Unknown, Some(5)));
    }
}
