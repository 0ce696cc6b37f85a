//! A bounds-checked little-endian reader over the file bytes, and the one checked size helper.
//!
//! Every read states which [`Section`] it is in, so a short file is reported as
//! [`GgufError::Truncated`] naming the key, array or tensor info being read. All size
//! arithmetic on untrusted numbers (in the whole GGUF module) goes through [`size`].

use super::error::{GgufError, Section};

/// An arithmetic step on sizes/offsets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SizeOp {
    /// `a + b`
    Add,
    /// `a * b`
    Mul,
    /// `a` rounded up to a multiple of `b` (`b` a non-zero power of two).
    AlignUp,
}

/// The one checked size helper: computes `a op b` in `u64`, or reports
/// [`GgufError::SizeOverflow`] with `what()` as context. `what` is only called on overflow.
pub(crate) fn size(
    a: u64,
    op: SizeOp,
    b: u64,
    what: impl FnOnce() -> String,
) -> Result<u64, GgufError> {
    let r = match op {
        SizeOp::Add => a.checked_add(b),
        SizeOp::Mul => a.checked_mul(b),
        SizeOp::AlignUp => {
            if b == 0 || !b.is_power_of_two() {
                None
            } else {
                a.checked_add(b - 1).map(|x| x & !(b - 1))
            }
        }
    };
    r.ok_or_else(|| GgufError::SizeOverflow { what: what() })
}

/// `a + b`, checked (see [`size`]).
pub(crate) fn add(a: u64, b: u64, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
    size(a, SizeOp::Add, b, what)
}

/// `a * b`, checked (see [`size`]).
pub(crate) fn mul(a: u64, b: u64, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
    size(a, SizeOp::Mul, b, what)
}

/// `a` rounded up to a multiple of the power of two `align`, checked (see [`size`]).
pub(crate) fn align_up(
    a: u64,
    align: u64,
    what: impl FnOnce() -> String,
) -> Result<u64, GgufError> {
    size(a, SizeOp::AlignUp, align, what)
}

/// `usize` -> `u64` (lossless on every platform Rust supports).
#[inline]
pub(crate) fn u64_of(n: usize) -> u64 {
    n as u64
}

/// A forward-only reader over `bytes`, tracking its absolute position.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Absolute offset of the next byte.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Absolute offset of the next byte, as `u64`.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        u64_of(self.pos)
    }

    /// The bytes from `start` (a position this cursor has passed) to the current position.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.bytes[start.min(self.pos)..self.pos]
    }

    /// Bytes left.
    #[inline]
    pub(crate) fn remaining(&self) -> u64 {
        u64_of(self.bytes.len() - self.pos)
    }

    /// The next `n` bytes, advancing past them, or `Truncated` in `section`.
    #[inline]
    pub(crate) fn take(
        &mut self,
        n: u64,
        section: impl FnOnce() -> Section,
    ) -> Result<&'a [u8], GgufError> {
        let left = self.remaining();
        if n > left {
            return Err(GgufError::Truncated {
                section: section(),
                offset: self.offset(),
                needed: n,
                available: left,
            });
        }
        // n <= left <= usize::MAX, so the cast is lossless.
        let n = n as usize;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub(crate) fn array<const N: usize>(
        &mut self,
        section: impl FnOnce() -> Section,
    ) -> Result<[u8; N], GgufError> {
        let b = self.take(u64_of(N), section)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// A little-endian `u32`.
    #[inline]
    pub(crate) fn u32(&mut self, section: impl FnOnce() -> Section) -> Result<u32, GgufError> {
        self.array::<4>(section).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    #[inline]
    pub(crate) fn u64(&mut self, section: impl FnOnce() -> Section) -> Result<u64, GgufError> {
        self.array::<8>(section).map(u64::from_le_bytes)
    }

    /// A GGUF string (u64 length + bytes): checks the cap, the bytes left and UTF-8.
    /// `what` names the string in a UTF-8 error.
    pub(crate) fn string(
        &mut self,
        max: u64,
        section: impl Fn() -> Section,
        what: impl FnOnce() -> String,
    ) -> Result<&'a str, GgufError> {
        let len_offset = self.offset();
        let len = self.u64(&section)?;
        if len > max {
            return Err(GgufError::StringTooLong {
                offset: len_offset,
                len,
                max,
            });
        }
        let start = self.offset();
        let raw = self.take(len, section)?;
        std::str::from_utf8(raw).map_err(|_| GgufError::InvalidUtf8 {
            what: what(),
            offset: start,
        })
    }
}
