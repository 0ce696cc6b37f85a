//! Unicode character classes as llama.cpp's pre-tokenizers see them.
//!
//! The general categories come from the generated table in `unicode_data.rs` (Unicode 15.1, the
//! version llama.cpp's `src/unicode-data.cpp` was generated from). White space is the Unicode
//! `White_Space` property, exactly the set llama.cpp uses.

use super::unicode_data::CAT_RANGES;

/// The category group of a code point plus a white-space bit, packed in one byte.
///
/// `Flags::NONE` stands for "no code point" (a position outside the piece being split); every
/// real code point has [`Flags::VALID`] set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Flags(u8);

impl Flags {
    const CAT_MASK: u8 = 0x07;
    const WHITESPACE: u8 = 0x08;
    const VALID: u8 = 0x10;
    /// Outside the current piece.
    pub(crate) const NONE: Flags = Flags(0);

    #[cfg_attr(not(test), allow(dead_code))]
    const CAT_UNASSIGNED: u8 = 0;
    const CAT_NUMBER: u8 = 1;
    const CAT_LETTER: u8 = 2;
    #[cfg_attr(not(test), allow(dead_code))]
    const CAT_MARK: u8 = 4;
    const CAT_PUNCT: u8 = 5;
    #[cfg_attr(not(test), allow(dead_code))]
    const CAT_SYMBOL: u8 = 6;

    #[inline]
    fn cat(self) -> u8 {
        self.0 & Self::CAT_MASK
    }
    /// A real code point (not [`Flags::NONE`]).
    #[inline]
    pub(crate) fn is_valid(self) -> bool {
        self.0 & Self::VALID != 0
    }
    /// `\p{N}`.
    #[inline]
    pub(crate) fn is_number(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_NUMBER
    }
    /// `\p{L}`.
    #[inline]
    pub(crate) fn is_letter(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_LETTER
    }
    /// `\p{P}`.
    #[inline]
    pub(crate) fn is_punct(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_PUNCT
    }
    /// `\p{S}`.
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub(crate) fn is_symbol(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_SYMBOL
    }
    /// `\p{M}`.
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub(crate) fn is_mark(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_MARK
    }
    /// Unicode `White_Space` (`\s` in llama.cpp's splitters).
    #[inline]
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    /// Not a letter, number or white space, but a real code point: `[^\s\p{L}\p{N}]`.
    #[inline]
    pub(crate) fn is_other(self) -> bool {
        self.is_valid()
            && !self.is_whitespace()
            && !matches!(self.cat(), Self::CAT_NUMBER | Self::CAT_LETTER)
    }
    /// Unassigned code point (general category Cn).
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub(crate) fn is_unassigned(self) -> bool {
        self.is_valid() && self.cat() == Self::CAT_UNASSIGNED
    }
}

/// ASCII flags, precomputed.
static ASCII_FLAGS: [Flags; 128] = {
    let mut t = [Flags(0); 128];
    let mut c = 0;
    while c < 128 {
        t[c] = Flags(
            Flags::VALID
                | table_cat(c as u32)
                | if is_ws(c as u32) {
                    Flags::WHITESPACE
                } else {
                    0
                },
        );
        c += 1;
    }
    t
};

const fn is_ws(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

/// Binary search of the category table.
const fn table_cat(cp: u32) -> u8 {
    // Find the last range whose start is <= cp.
    let mut lo = 0usize;
    let mut hi = CAT_RANGES.len();
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if CAT_RANGES[mid].0 <= cp {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    CAT_RANGES[lo].1
}

/// The flags of a code point.
#[inline]
pub(crate) fn flags(cp: u32) -> Flags {
    if cp < 128 {
        return ASCII_FLAGS[cp as usize];
    }
    if cp >= 0x11_0000 {
        // llama.cpp: out-of-table code points are "undefined" (still a real character).
        return Flags(Flags::VALID);
    }
    Flags(Flags::VALID | table_cat(cp) | if is_ws(cp) { Flags::WHITESPACE } else { 0 })
}

/// The byte llama.cpp's regex fallback replaces a code point with before running `std::regex`
/// over a pattern that uses `\p{..}` classes ("collapsed" text): ASCII stays itself, non-ASCII
/// white space becomes 0x0B, and other code points become 0xD1..=0xD5 (N, L, P, M, S) or 0xD0.
#[cfg(test)]
pub(crate) fn collapsed(cp: u32) -> u32 {
    if cp < 128 {
        return cp;
    }
    let f = flags(cp);
    if f.is_whitespace() {
        0x0B
    } else if f.is_number() {
        0xD1
    } else if f.is_letter() {
        0xD2
    } else if f.is_punct() {
        0xD3
    } else if f.is_mark() {
        0xD4
    } else if f.is_symbol() {
        0xD5
    } else {
        0xD0
    }
}

/// The code point llama.cpp's `std::wregex` fallback sees (patterns without `\p{..}`): non-ASCII
/// white space becomes 0x0B, everything else stays.
#[inline]
pub(crate) fn wide(cp: u32) -> u32 {
    if cp > 0x7F && is_ws(cp) { 0x0B } else { cp }
}

/// `\s` of C++'s `std::regex` in the "C" locale, on a (collapsed or wide) code point.
#[cfg(test)]
pub(crate) fn regex_space(c: u32) -> bool {
    matches!(c, 0x09..=0x0D | 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_unicode() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('Ж' as u32).is_letter());
        assert!(flags('中' as u32).is_letter());
        assert!(flags('٣' as u32).is_number()); // ARABIC-INDIC DIGIT THREE
        assert!(flags('½' as u32).is_number());
        assert!(flags('¿' as u32).is_punct());
        assert!(flags('€' as u32).is_symbol());
        assert!(flags('~' as u32).is_symbol());
        assert!(flags(0x0301).is_mark());
        assert!(flags(0xA0).is_whitespace());
        assert!(flags(0x3000).is_whitespace());
        assert!(!flags(0x200B).is_whitespace()); // ZERO WIDTH SPACE is Cf, not White_Space
        assert!(flags(0x200B).is_other());
        assert!(!flags(0x1C).is_whitespace()); // not White_Space (Python's \s disagrees)
        assert!(flags(0x0378).is_unassigned());
        assert!(flags(0x2EBF0).is_letter()); // CJK Ext. I, new in Unicode 15.1
        assert!(!Flags::NONE.is_valid() && !Flags::NONE.is_other());
        assert_eq!(collapsed(0xE9), 0xD2);
        assert_eq!(collapsed(0x2028), 0x0B);
        assert_eq!(collapsed(0x200B), 0xD0);
        assert_eq!(wide(0x3000), 0x0B);
    }

    #[test]
    fn table_is_sorted_and_starts_at_zero() {
        assert_eq!(CAT_RANGES[0].0, 0);
        assert!(
            CAT_RANGES
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1)
        );
    }
}
