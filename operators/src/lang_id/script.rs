//! Script and orthography checks that catch what a language-ID model gets wrong: a Hindi
//! label on romanized text, Malay read as Indonesian, English boilerplate read as Swahili.

use crate::chars::{is_letter, script_of};
use std::collections::HashMap;
use unicode_script::Script;

/// The dominant script of a text (ISO 15924 short name) and the fraction of letters in it.
/// Common and inherited characters (digits, punctuation, combining marks) are not counted.
pub fn dominant_script(text: &str) -> Option<(&'static str, f64)> {
    let mut counts: HashMap<Script, usize> = HashMap::new();
    let mut total = 0usize;
    for c in text.chars() {
        if !is_letter(c) {
            continue;
        }
        let s = script_of(c);
        if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        *counts.entry(s).or_default() += 1;
        total += 1;
    }
    let (script, n) = counts.into_iter().max_by_key(|(s, n)| (*n, s.short_name()))?;
    Some((script.short_name(), n as f64 / total as f64))
}

/// Characters a script check looks at: the first this many script-bearing characters (enough
/// for a stable fraction; the check stays O(1) on a 50 MB document).
const SCRIPT_SAMPLE: usize = 2000;

/// Fraction of script-bearing characters (letters and their marks; not digits, punctuation or
/// emoji) written in `expected`, with Han/Kana/Hangul accepted for the CJK scripts; `None`
/// when the text has none. Reads at most the first SCRIPT_SAMPLE of them.
pub fn script_fraction(text: &str, expected: &str) -> Option<f64> {
    let single;
    let accepted: &[Script] = match expected {
        "Hans" | "Hant" => &[Script::Han],
        "Jpan" => &[Script::Hiragana, Script::Katakana, Script::Han],
        "Kore" => &[Script::Hangul, Script::Han],
        _ => {
            single = Script::from_short_name(expected);
            single.as_slice()
        }
    };
    let latin = expected == "Latn";
    let (mut hit, mut total) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                total += 1;
                hit += latin as usize;
            }
        } else {
            let s = script_of(c);
            if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
                continue;
            }
            total += 1;
            hit += accepted.contains(&s) as usize;
        }
        if total == SCRIPT_SAMPLE {
            break;
        }
    }
    (total > 0).then(|| hit as f64 / total as f64)
}

/// Frequent function words (lower-case) of the target languages and of Malay; the Latin-script
/// check and the Gopher stop-word rule use them.
pub fn stopwords(lang: &str) -> &'static [&'static str] {
    match lang {
        "en" => {
            &["the", "of", "and", "to", "in", "is", "that", "for", "with", "be", "as", "by", "are", "this"]
        }
        "fi" => &[
            "ja", "on", "ei", "että", "se", "oli", "hän", "kuin", "tai", "mutta", "ovat", "sekä", "jonka",
            "myös",
        ],
        "id" => &[
            "yang", "dan", "di", "dengan", "untuk", "tidak", "ini", "dari", "dalam", "akan", "atau", "pada",
            "adalah", "setiap",
        ],
        "ms" => &[
            "yang", "dan", "di", "dengan", "untuk", "tidak", "ini", "dari", "dalam", "akan", "atau", "pada",
            "ialah", "setiap",
        ],
        "sw" => {
            &["na", "ya", "wa", "kwa", "za", "ni", "katika", "kila", "la", "cha", "au", "hii", "kuwa", "bila"]
        }
        "tr" => &[
            "ve", "bir", "bu", "için", "ile", "da", "de", "olarak", "her", "veya", "hiç", "kimse", "olan",
            "gibi",
        ],
        "vi" => &[
            "và", "của", "là", "có", "các", "được", "cho", "trong", "không", "những", "người", "một", "với",
            "đều",
        ],
        "hi" => &["का", "की", "के", "है", "में", "और", "को", "से", "पर", "यह", "एक", "लिए", "किसी", "कि"],
        "bn" => &["এবং", "ও", "এই", "করে", "হয়", "থেকে", "না", "যে", "জন্য", "তার", "একটি", "বা", "কোন", "সকল"],
        "ur" => &["کے", "کی", "کا", "ہے", "میں", "اور", "کو", "سے", "پر", "یہ", "ایک", "کہ", "لئے", "کسی"],
        "ta" => {
            &["மற்றும்", "ஒரு", "இந்த", "என்று", "அல்லது", "உள்ள", "அவர்", "இது", "எந்த", "உண்டு", "வேண்டும்", "அது"]
        }
        "th" => &["ที่", "และ", "ของ", "ใน", "การ", "เป็น", "ได้", "มี", "ไม่", "จะ", "ให้", "หรือ", "โดย", "ทุก"],
        _ => &[],
    }
}

/// Words that tell Malay from Indonesian: spellings and vocabulary that differ between the
/// two standards (bahawa/bahwa, kerana/karena, antarabangsa/internasional, mahkamah/pengadilan,
/// wang/uang, sahaja/saja, …). Words both use are left out.
const MALAY_MARKERS: &[&str] = &[
    "bahawa",
    "bahawasanya",
    "kerana",
    "hendaklah",
    "sebarang",
    "tiada",
    "sesiapa",
    "apa-apa",
    "iaitu",
    "ialah",
    "boleh",
    "antarabangsa",
    "pertubuhan",
    "perlembagaan",
    "kerajaan",
    "mahkamah",
    "wang",
    "sahaja",
    "maruah",
    "samarata",
    "perisytiharan",
    "ugama",
    "mana-mana",
    "perkahwinan",
    "kebangsaan",
];
const INDONESIAN_MARKERS: &[&str] = &[
    "bahwa",
    "karena",
    "harus",
    "dapat",
    "internasional",
    "nasional",
    "uang",
    "saja",
    "pengadilan",
    "martabat",
    "perserikatan",
    "pernyataan",
    "memperoleh",
    "mendapat",
    "sesuatu",
    "tersebut",
    "bisa",
    "pengakuan",
    "pria",
    "perkawinan",
    "diskriminasi",
    "tetapi",
];

/// What the Latin-script sanity check found.
#[derive(Debug, PartialEq)]
pub enum LatinCheck {
    Ok,
    /// The text lacks the language's function words or letters: (detail).
    Failed(String),
    /// Malay markers outweigh Indonesian ones in a text labelled Indonesian.
    LooksMalay(String),
}

/// Checks that a text labelled `lang` (fi, id, sw, tr, vi) looks like it: enough of its
/// function words, its letters (ä/ö, ı/ş/ğ, Vietnamese tone marks), and for Indonesian more
/// Indonesian than Malay markers. Other languages pass.
pub fn latin_check(lang: &str, text: &str, min_stopword_fraction: f64) -> LatinCheck {
    let required_letters: &[char] = match lang {
        "fi" => &['ä', 'ö'],
        "tr" => &['ı', 'ş', 'ğ', 'ç', 'ö', 'ü', 'İ'],
        "vi" => &[
            'ư', 'ơ', 'đ', 'ạ', 'ả', 'ấ', 'ầ', 'ế', 'ề', 'ộ', 'ờ', 'ợ', 'ủ', 'ữ', 'ự', 'ị', 'ọ', 'ố', 'ồ',
            'ể', 'ệ', 'ớ',
        ],
        "id" | "sw" => &[],
        _ => return LatinCheck::Ok,
    };
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && (is_letter(c) || c.is_numeric())))
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return LatinCheck::Failed("no words".into());
    }
    let stop = stopwords(lang);
    let hits = words.iter().filter(|w| stop.contains(w)).count();
    let fraction = hits as f64 / words.len() as f64;
    if fraction < min_stopword_fraction {
        return LatinCheck::Failed(format!(
            "{:.3} of words are {lang} function words (< {min_stopword_fraction})",
            fraction
        ));
    }
    if !required_letters.is_empty() && !lower.chars().any(|c| required_letters.contains(&c)) {
        return LatinCheck::Failed(format!("none of the letters typical of {lang} occur"));
    }
    if lang == "id" {
        let malay = words.iter().filter(|w| MALAY_MARKERS.contains(w)).count();
        let indonesian = words.iter().filter(|w| INDONESIAN_MARKERS.contains(w)).count();
        if malay > indonesian {
            return LatinCheck::LooksMalay(format!(
                "Malay markers {malay} > Indonesian markers {indonesian}"
            ));
        }
    }
    LatinCheck::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_scripts_of_real_text() {
        assert_eq!(dominant_script("सभी मनुष्यों को गौरव").unwrap().0, "Deva");
        assert_eq!(dominant_script("تمام انسان آزاد").unwrap().0, "Arab");
        assert_eq!(dominant_script("সমস্ত মানুষ স্বাধীনভাবে").unwrap().0, "Beng");
        assert_eq!(dominant_script("மனிதப் பிறவியினர் சகலரும்").unwrap().0, "Taml");
        assert_eq!(dominant_script("มนุษย์ทั้งหลายเกิดมามีอิสระ").unwrap().0, "Thai");
        assert_eq!(dominant_script("123 !!! ..."), None);
        let mixed = script_fraction("Hindi: सभी मनुष्यों", "Deva").unwrap();
        assert!(mixed > 0.5 && mixed < 1.0, "{mixed}");
    }

    #[test]
    fn latin_checks() {
        let id = "Setiap orang berhak atas kebebasan berpikir, berkeyakinan dan beragama; dalam hak ini termasuk kebebasan berganti agama atau kepercayaan, dan kebebasan untuk menyatakan agama atau kepercayaan dengan cara mengajarkannya, melakukannya, beribadat dan mentaatinya, baik sendiri maupun bersama-sama dengan orang lain, dan baik di tempat umum maupun yang tersendiri. Hal ini adalah karena setiap orang dapat.";
        assert_eq!(latin_check("id", id, 0.03), LatinCheck::Ok);
        let ms = "Setiap orang adalah berhak kepada kebebasan fikiran, perasaan hati dan agama; hak ini termasuklah kebebasan menukar agama atau kepercayaannya, dan kebebasan, sama ada secara bersendirian atau secara bersesama dengan orang-orang lain dan secara terbuka atau bersendiri, menganuti agama atau kepercayaannya dalam pengajaran, amalan, sembahyang dan pematuhan. Ini ialah kerana sesiapa boleh.";
        assert!(matches!(latin_check("id", "Bahawa sesiapa pun hendaklah mendapat sebarang perlindungan yang sama rata daripada mahkamah dan undang-undang di dalam negeri.", 0.03), LatinCheck::LooksMalay(_)));
        assert!(matches!(latin_check("id", ms, 0.03), LatinCheck::LooksMalay(_)));
        assert!(matches!(
            latin_check("vi", "Tat ca moi nguoi sinh ra deu duoc tu do va binh dang", 0.03),
            LatinCheck::Failed(_)
        ));
        assert_eq!(
            latin_check(
                "vi",
                "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền",
                0.03
            ),
            LatinCheck::Ok
        );
        assert!(matches!(
            latin_check("sw", "The quick brown fox jumps over the lazy dog", 0.03),
            LatinCheck::Failed(_)
        ));
        assert_eq!(latin_check("en", "anything", 0.03), LatinCheck::Ok);
    }
}
