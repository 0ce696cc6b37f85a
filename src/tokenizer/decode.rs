//! Decoding: token pieces, whole sequences (llama.cpp's `llama_detokenize`) and a streaming
//! decoder that only ever emits whole UTF-8 characters.

use super::bpe::unicode_to_byte;
use super::vocab::TokenAttr;
use super::{Tokenizer, TokenizerError};

impl Tokenizer {
    /// Appends the piece of `id` to `out`, as llama.cpp's `llama_token_to_piece` with
    /// `lstrip = 0`: control and unknown tokens are empty unless `special`; user-defined tokens
    /// are their text; byte tokens their byte; SentencePiece texts turn `▁` into spaces and
    /// byte-level BPE texts are mapped back through GPT-2's byte alphabet.
    pub fn append_piece(
        &self,
        id: u32,
        special: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TokenizerError> {
        if id as usize >= self.vocab.len() {
            return Err(TokenizerError::InvalidTokenId {
                id,
                n_vocab: self.vocab.len(),
            });
        }
        let attr = self.vocab.attr(id);
        let text = self.vocab.text(id);
        if attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL) {
            if special {
                out.extend_from_slice(text);
            }
            return Ok(());
        }
        if attr.has(TokenAttr::USER_DEFINED) {
            out.extend_from_slice(text);
        } else if attr.has(TokenAttr::NORMAL) {
            if self.is_spm() {
                unescape_spaces(text, out);
            } else {
                bpe_decode_text(text, out);
            }
        } else if attr.has(TokenAttr::BYTE) {
            out.push(byte_token_value(text));
        }
        // Unused and undefined tokens decode to nothing.
        Ok(())
    }

    /// The piece of `id` (see [`Tokenizer::append_piece`]).
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<Vec<u8>, TokenizerError> {
        let mut v = Vec::new();
        self.append_piece(id, special, &mut v)?;
        Ok(v)
    }

    /// Decodes a token sequence to bytes, as llama.cpp's `llama_detokenize`:
    /// `remove_special` drops a leading BOS / trailing EOS the tokenizer would add itself;
    /// `unparse_special` renders control tokens as their text. With `add_space_prefix` the
    /// leading space of the first piece is removed (unless a BOS was removed), and for the
    /// pre-tokenizers that ask for it the "clean up tokenization spaces" passes are applied.
    pub fn decode(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut ids = ids;
        let mut remove_space = self.flags.add_space_prefix;
        if remove_special
            && self.flags.add_bos
            && !ids.is_empty()
            && Some(ids[0]) == self.special.bos
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && self.flags.add_eos
            && !ids.is_empty()
            && Some(ids[ids.len() - 1]) == self.special.eos
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            let start = out.len();
            self.append_piece(id, unparse_special, &mut out)?;
            if remove_space && out.len() > start && out[start] == b' ' {
                out.remove(start);
            }
            remove_space = false;
        }
        if self.flags.clean_spaces {
            clean_spaces(&mut out);
        }
        Ok(out)
    }

    /// [`Tokenizer::decode`] as a `String`; invalid UTF-8 becomes U+FFFD.
    pub fn decode_lossy(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String, TokenizerError> {
        Ok(
            String::from_utf8_lossy(&self.decode(ids, remove_special, unparse_special)?)
                .into_owned(),
        )
    }

    /// A streaming decoder for generated tokens (see [`StreamDecoder`]).
    pub fn stream_decoder(&self, special: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tok: self,
            special,
            pending: Vec::new(),
            strip_space: false,
        }
    }
}

/// The byte of a byte token: llama.cpp parses the two characters after `<0x` as hexadecimal
/// (`strtol`); a malformed text gives the value of its leading hex digits (0 if none).
pub(crate) fn byte_token_value(text: &[u8]) -> u8 {
    let mut v = 0u32;
    for &c in text.iter().skip(3).take(2) {
        match (c as char).to_digit(16) {
            Some(d) => v = v * 16 + d,
            None => break,
        }
    }
    v as u8
}

/// `▁` (U+2581) -> ' '.
fn unescape_spaces(text: &[u8], out: &mut Vec<u8>) {
    const ESC: &[u8] = "\u{2581}".as_bytes();
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(ESC) {
            out.push(b' ');
            i += ESC.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
}

/// llama.cpp's `llama_decode_text`: each character of a byte-level BPE token stands for one byte;
/// a character outside GPT-2's alphabet is written as `[UNK_BYTE_0x<hex><token text>]`.
fn bpe_decode_text(text: &[u8], out: &mut Vec<u8>) {
    // Token texts are valid UTF-8 (the loader checked); fall back to raw bytes otherwise.
    let Ok(s) = std::str::from_utf8(text) else {
        out.extend_from_slice(text);
        return;
    };
    for c in s.chars() {
        match unicode_to_byte(c as u32) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).as_bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
}

/// llama.cpp's three clean-up passes (`clean_spaces`), ported literally on the byte buffer.
fn clean_spaces(text: &mut Vec<u8>) {
    // First pass: " ?", " !", " .", " ," lose the space.
    let total1 = text.len();
    let mut total = usize::from(total1 > 0);
    for i in 1..total1 {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    // Second pass: " ' " becomes "'".
    let total2 = total;
    total = usize::from(total2 > 0);
    let mut i = 1;
    while i < total2 {
        let x = text[i];
        if x == b'\'' && i + 1 < total2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    // Third pass: " 's", " 'm", " 're", " 've" lose the space.
    let total3 = total;
    total = usize::from(total3 > 0);
    for i in 1..total3 {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = text[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if x1 != b't' && x1 != b'd' && i + 2 < total3 {
                let x2 = text[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

/// Turns a stream of token ids into text one token at a time, never splitting a UTF-8 character:
/// bytes of an incomplete character (byte tokens, or BPE tokens that end mid-character) wait for
/// the next token. Pieces are llama.cpp's `token_to_piece` (no clean-up passes, as llama.cpp's
/// own streaming output); bytes that can never form a character come out as U+FFFD.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    special: bool,
    /// Bytes not yet emitted (an incomplete UTF-8 sequence).
    pending: Vec<u8>,
    /// Remove one leading space from the next piece.
    strip_space: bool,
}

impl StreamDecoder<'_> {
    /// Removes the leading space of the first piece when the tokenizer uses `add_space_prefix`
    /// (SentencePiece), as [`Tokenizer::decode`] does at the start of a text. Off by default:
    /// generated tokens continue a prompt.
    pub fn at_text_start(mut self) -> Self {
        self.strip_space = self.tok.flags.add_space_prefix;
        self
    }

    /// Feeds one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let start = self.pending.len();
        self.tok.append_piece(id, self.special, &mut self.pending)?;
        if self.strip_space && self.pending.len() > start {
            if self.pending[start] == b' ' {
                self.pending.remove(start);
            }
            self.strip_space = false;
        }
        Ok(self.take_complete(false))
    }

    /// Flushes what is left at the end of the stream (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        self.take_complete(true)
    }

    fn take_complete(&mut self, end: bool) -> String {
        let mut out = String::new();
        take_utf8(&mut self.pending, &mut out, end);
        out
    }
}

/// Moves the complete UTF-8 characters at the front of `buf` into `out`; invalid bytes become
/// U+FFFD. With `end`, an incomplete character at the end becomes U+FFFD too; otherwise it
/// stays in `buf`.
pub(crate) fn take_utf8(buf: &mut Vec<u8>, out: &mut String, end: bool) {
    let mut rest: &[u8] = buf;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (ok, tail) = rest.split_at(e.valid_up_to());
                // `ok` is valid UTF-8 by `valid_up_to`.
                out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        rest = &tail[n..];
                    }
                    None if end => {
                        out.push('\u{FFFD}');
                        rest = &[];
                        break;
                    }
                    None => {
                        rest = tail;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.len();
    let len = buf.len();
    buf.drain(..len - keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_like_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's I 'm we 're they 've don 't I 'd we 'll"),
            "it's I'm we're they've don 't I 'd we 'll"
        );
        assert_eq!(clean(""), "");
        assert_eq!(clean(" ."), ".");
    }

    #[test]
    fn byte_token_values() {
        assert_eq!(byte_token_value(b"<0x0A>"), 10);
        assert_eq!(byte_token_value(b"<0xff>"), 255);
        assert_eq!(byte_token_value(b"<0x"), 0);
        assert_eq!(byte_token_value(b"x"), 0);
    }
}
