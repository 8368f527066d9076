//! One canonical language code: ISO 639-1 (639-3 where no 639-1 exists) plus an ISO 15924
//! script, written `hi_Deva`. Inputs in any common form map onto it: fastText labels
//! (`__label__hi`), 639-1 (`hi`), 639-3 (`hin`, incl. macrolanguage members such as `swh` →
//! `sw`, `zsm` → `ms`), FineWeb-2 / Flores style (`hin_Deva`, `hi-Deva`). docs/languages.md
//! lists the table.

use std::fmt;

/// (639-1, 639-3 codes that map to it, default script, English name)
pub const LANGUAGES: &[(&str, &[&str], &str, &str)] = &[
    ("af", &["afr"], "Latn", "Afrikaans"),
    ("am", &["amh"], "Ethi", "Amharic"),
    ("ar", &["ara", "arb"], "Arab", "Arabic"),
    ("as", &["asm"], "Beng", "Assamese"),
    ("az", &["aze", "azj"], "Latn", "Azerbaijani"),
    ("be", &["bel"], "Cyrl", "Belarusian"),
    ("bg", &["bul"], "Cyrl", "Bulgarian"),
    ("bn", &["ben"], "Beng", "Bengali"),
    ("ca", &["cat"], "Latn", "Catalan"),
    ("cs", &["ces", "cze"], "Latn", "Czech"),
    ("cy", &["cym", "wel"], "Latn", "Welsh"),
    ("da", &["dan"], "Latn", "Danish"),
    ("de", &["deu", "ger"], "Latn", "German"),
    ("el", &["ell", "gre"], "Grek", "Greek"),
    ("en", &["eng"], "Latn", "English"),
    ("es", &["spa"], "Latn", "Spanish"),
    ("et", &["est", "ekk"], "Latn", "Estonian"),
    ("eu", &["eus", "baq"], "Latn", "Basque"),
    ("fa", &["fas", "per", "pes"], "Arab", "Persian"),
    ("fi", &["fin"], "Latn", "Finnish"),
    ("fr", &["fra", "fre"], "Latn", "French"),
    ("ga", &["gle"], "Latn", "Irish"),
    ("gl", &["glg"], "Latn", "Galician"),
    ("gu", &["guj"], "Gujr", "Gujarati"),
    ("ha", &["hau"], "Latn", "Hausa"),
    ("he", &["heb"], "Hebr", "Hebrew"),
    ("hi", &["hin"], "Deva", "Hindi"),
    ("hr", &["hrv"], "Latn", "Croatian"),
    ("hu", &["hun"], "Latn", "Hungarian"),
    ("hy", &["hye", "arm"], "Armn", "Armenian"),
    ("id", &["ind"], "Latn", "Indonesian"),
    ("is", &["isl", "ice"], "Latn", "Icelandic"),
    ("it", &["ita"], "Latn", "Italian"),
    ("ja", &["jpn"], "Jpan", "Japanese"),
    ("jv", &["jav"], "Latn", "Javanese"),
    ("ka", &["kat", "geo"], "Geor", "Georgian"),
    ("kk", &["kaz"], "Cyrl", "Kazakh"),
    ("km", &["khm"], "Khmr", "Khmer"),
    ("kn", &["kan"], "Knda", "Kannada"),
    ("ko", &["kor"], "Kore", "Korean"),
    ("ky", &["kir"], "Cyrl", "Kyrgyz"),
    ("lo", &["lao"], "Laoo", "Lao"),
    ("lt", &["lit"], "Latn", "Lithuanian"),
    ("lv", &["lav", "lvs"], "Latn", "Latvian"),
    ("mg", &["mlg", "plt"], "Latn", "Malagasy"),
    ("mk", &["mkd", "mac"], "Cyrl", "Macedonian"),
    ("ml", &["mal"], "Mlym", "Malayalam"),
    ("mn", &["mon", "khk"], "Cyrl", "Mongolian"),
    ("mr", &["mar"], "Deva", "Marathi"),
    ("ms", &["msa", "may", "zsm", "zlm"], "Latn", "Malay"),
    ("my", &["mya", "bur"], "Mymr", "Burmese"),
    ("ne", &["nep", "npi"], "Deva", "Nepali"),
    ("nl", &["nld", "dut"], "Latn", "Dutch"),
    ("no", &["nor", "nob", "nno"], "Latn", "Norwegian"),
    ("or", &["ori", "ory"], "Orya", "Odia"),
    ("pa", &["pan"], "Guru", "Punjabi"),
    ("pl", &["pol"], "Latn", "Polish"),
    ("ps", &["pus", "pbt"], "Arab", "Pashto"),
    ("pt", &["por"], "Latn", "Portuguese"),
    ("ro", &["ron", "rum"], "Latn", "Romanian"),
    ("ru", &["rus"], "Cyrl", "Russian"),
    ("sa", &["san"], "Deva", "Sanskrit"),
    ("sd", &["snd"], "Arab", "Sindhi"),
    ("si", &["sin"], "Sinh", "Sinhala"),
    ("sk", &["slk", "slo"], "Latn", "Slovak"),
    ("sl", &["slv"], "Latn", "Slovenian"),
    ("so", &["som"], "Latn", "Somali"),
    ("sq", &["sqi", "alb", "als"], "Latn", "Albanian"),
    ("sr", &["srp"], "Cyrl", "Serbian"),
    ("sv", &["swe"], "Latn", "Swedish"),
    ("sw", &["swa", "swh"], "Latn", "Swahili"),
    ("ta", &["tam"], "Taml", "Tamil"),
    ("te", &["tel"], "Telu", "Telugu"),
    ("tg", &["tgk"], "Cyrl", "Tajik"),
    ("th", &["tha"], "Thai", "Thai"),
    ("tl", &["tgl", "fil"], "Latn", "Tagalog"),
    ("tr", &["tur"], "Latn", "Turkish"),
    ("tt", &["tat"], "Cyrl", "Tatar"),
    ("ug", &["uig"], "Arab", "Uyghur"),
    ("uk", &["ukr"], "Cyrl", "Ukrainian"),
    ("ur", &["urd"], "Arab", "Urdu"),
    ("uz", &["uzb", "uzn"], "Latn", "Uzbek"),
    ("vi", &["vie"], "Latn", "Vietnamese"),
    ("yi", &["yid", "ydd"], "Hebr", "Yiddish"),
    ("yo", &["yor"], "Latn", "Yoruba"),
    ("zh", &["zho", "chi", "cmn"], "Hans", "Chinese"),
    ("zu", &["zul"], "Latn", "Zulu"),
];

/// A canonical language code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LangCode {
    /// ISO 639-1, or 639-3 for languages without a two-letter code.
    pub lang: String,
    /// ISO 15924 script, e.g. `Deva`; empty when neither the input nor the table gives one.
    pub script: String,
}

impl fmt::Display for LangCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.script.is_empty() {
            write!(f, "{}", self.lang)
        } else {
            write!(f, "{}_{}", self.lang, self.script)
        }
    }
}

impl LangCode {
    /// Parses any supported form; `None` for text that is not a language code.
    pub fn parse(label: &str) -> Option<LangCode> {
        let label = label.trim().trim_start_matches("__label__");
        let (lang, script) = match label.split_once(['_', '-']) {
            Some((l, s)) => (l, Some(s)),
            None => (label, None),
        };
        let lang = lang.to_ascii_lowercase();
        if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        let row =
            LANGUAGES.iter().find(|(one, threes, _, _)| *one == lang || threes.contains(&lang.as_str()));
        let code = row.map(|r| r.0.to_string()).unwrap_or(lang);
        let script = match script {
            Some(s) if s.len() == 4 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                let mut s = s.to_ascii_lowercase();
                s[..1].make_ascii_uppercase();
                s
            }
            _ => row.map(|r| r.2.to_string()).unwrap_or_default(),
        };
        Some(LangCode { lang: code, script })
    }

    /// The English name, for "Answer in {Language}." and reports.
    pub fn name(&self) -> &'static str {
        LANGUAGES.iter().find(|r| r.0 == self.lang).map(|r| r.3).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_maps_to_one_code() {
        for form in ["hi", "hin", "hin_Deva", "hi-Deva", "__label__hi", "HIN"] {
            assert_eq!(LangCode::parse(form).unwrap().to_string(), "hi_Deva", "{form}");
        }
        assert_eq!(LangCode::parse("swh").unwrap().to_string(), "sw_Latn");
        assert_eq!(LangCode::parse("zsm_Latn").unwrap().to_string(), "ms_Latn");
        assert_eq!(LangCode::parse("eng").unwrap().to_string(), "en_Latn");
        assert_eq!(LangCode::parse("urd_Arab").unwrap().name(), "Urdu");
        // Unknown three-letter codes pass through; an explicit script is kept.
        assert_eq!(LangCode::parse("war").unwrap().to_string(), "war");
        assert_eq!(LangCode::parse("hi_Latn").unwrap().to_string(), "hi_Latn");
        assert_eq!(LangCode::parse("not a code"), None);
        assert_eq!(LangCode::parse(""), None);
    }
}
