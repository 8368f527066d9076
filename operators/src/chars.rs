//! Unicode property lookups the filters make per character, from tables for the Basic
//! Multilingual Plane built on first use (the standard library's and unicode-script's
//! searches were several percent of the filter chain; docs/benchmarks.md).

use unicode_script::{Script, UnicodeScript};

/// Unicode `Alphabetic`, from a bit table for the Basic Multilingual Plane (the standard
/// library's lookup for non-ASCII characters was 5% of the filter chain).
pub(crate) fn is_letter(c: char) -> bool {
    static BMP: std::sync::LazyLock<Box<[u64]>> = std::sync::LazyLock::new(|| {
        let mut bits = vec![0u64; 0x10000 / 64];
        for c in (0..0x10000u32).filter_map(char::from_u32).filter(|c| c.is_alphabetic()) {
            bits[c as usize / 64] |= 1 << (c as u32 % 64);
        }
        bits.into_boxed_slice()
    });
    match c as u32 {
        cp if cp < 0x80 => c.is_ascii_alphabetic(),
        cp if cp < 0x10000 => BMP[cp as usize / 64] >> (cp % 64) & 1 == 1,
        _ => c.is_alphabetic(),
    }
}

/// The script of a character, from a table for the Basic Multilingual Plane (unicode-script's
/// binary search per character was 5% of the filter chain).
pub(crate) fn script_of(c: char) -> Script {
    static BMP: std::sync::LazyLock<Box<[Script]>> = std::sync::LazyLock::new(|| {
        (0..0x10000u32).map(|u| char::from_u32(u).map_or(Script::Unknown, |c| c.script())).collect()
    });
    match c as u32 {
        u if u < 0x10000 => BMP[u as usize],
        _ => c.script(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_table_equals_the_standard_library() {
        for c in (0..0x11000u32).filter_map(char::from_u32) {
            assert_eq!(is_letter(c), c.is_alphabetic(), "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn script_table_equals_unicode_script() {
        for c in (0..0x11000u32).filter_map(char::from_u32) {
            assert_eq!(script_of(c), c.script(), "U+{:04X}", c as u32);
        }
    }
}
