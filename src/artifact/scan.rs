//! A byte-level JSON scanner for the state and plan parsers: it reads the few metadata fields
//! they keep and skips every other value without building or copying it.
//!
//! It accepts exactly what serde_json accepts where it goes, or gives up: any byte it does not
//! expect (a syntax error, the end of the input, an escape in a key or a kept string, a value
//! of another type than the field's, a duplicate field) is [`Bail`], and the caller then hands the
//! whole document to serde_json, whose answer (a value or an error with its kind and position)
//! is the answer. So errors are serde_json's by construction, and the scanner only has to be
//! right about the documents it takes whole.
//!
//! What serde_json checks in a value it ignores, the skipper checks too: JSON white space only,
//! the number grammar, `true`/`false`/`null`, escapes (`\u` with four hex digits, no check of
//! surrogates) and no raw control character in strings; like serde_json it does not check that
//! a skipped string is UTF-8. A key or string that is kept must be valid UTF-8 and escape-free
//! (else [`Bail`]). Skipping is iterative, so nesting depth costs memory of one bit-sized entry a
//! level, never stack.

/// The scanner gives the document to serde_json (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

pub(crate) type Scan<T> = Result<T, Bail>;

pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Open containers of the value being skipped: true for an object.
    stack: Vec<bool>,
}

#[inline]
fn is_stop(c: u8) -> bool {
    (c == b'"') | (c == b'\\') | (c < 0x20)
}

const ONES: u64 = u64::MAX / 255;

/// High bit of each byte of `x` that ends a run of plain string bytes (`"`, `\`, a control
/// character); the lowest one is exact, as the position of the first such byte (the bits above it
/// may be spurious).
#[inline]
fn stops(x: u64) -> u64 {
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let quote = (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'"')));
    let backslash = (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) & (ONES << 7)
}

#[inline]
fn word(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map(u64::from_le_bytes)
}

/// Bit k set when byte k of `block` ends a run of plain string bytes: SSE2, which every x86_64
/// processor has.
#[cfg(target_arch = "x86_64")]
#[inline]
fn stops16(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so the instructions exist wherever this
    // compiles; the unaligned load reads exactly the 16 bytes `block` borrows.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned c <= 0x1f exactly when max(c, 0x1f) is 0x1f.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// The index of the first byte at or after `i` that ends a run of plain string bytes, or the
/// length of `b`: 16 bytes at a time on x86_64, eight at a time (SWAR) elsewhere and for the last
/// bytes of the input.
#[inline]
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = b.get(i..i + 16).and_then(|s| <&[u8; 16]>::try_from(s).ok()) {
        let m = stops16(block);
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(x) = word(b, i) {
        let m = stops(x);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| !is_stop(c)) {
        i += 1;
    }
    i
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            bytes,
            pos: 0,
            stack: Vec::new(),
        }
    }

    /// A scanner of `bytes` from `pos` on (the start of an element of an array being split).
    pub(crate) fn at(bytes: &'a [u8], pos: usize) -> Self {
        Scanner {
            bytes,
            pos,
            stack: Vec::new(),
        }
    }

    pub(crate) fn input(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Consumes an array's `[`; true (and the `]` consumed) when the array is empty, else the
    /// position is at the first element (white space skipped).
    pub(crate) fn open_array(&mut self) -> Scan<bool> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// After an array's element: true when a `,` follows (consumed, and the white space after it,
    /// so that the position is the next element's), false when the `]` does (consumed).
    pub(crate) fn next_element(&mut self) -> Scan<bool> {
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.peek()?;
                Ok(true)
            }
            b']' => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Bail),
        }
    }

    /// Skips JSON white space; runs of spaces (indentation) counted eight at a time.
    #[inline]
    fn ws(&mut self) {
        let b = self.bytes;
        let mut i = self.pos;
        loop {
            match b.get(i) {
                Some(b' ') => match word(b, i) {
                    // Zero bytes where there are spaces; the first byte is one.
                    Some(x) => match x ^ (ONES * u64::from(b' ')) {
                        0 => i += 8,
                        other => i += (other.trailing_zeros() / 8) as usize,
                    },
                    None => i += 1,
                },
                Some(b'\n' | b'\t' | b'\r') => i += 1,
                _ => break,
            }
        }
        self.pos = i;
    }

    /// The next byte after white space, not consumed.
    #[inline]
    fn peek(&mut self) -> Scan<u8> {
        self.ws();
        self.bytes.get(self.pos).copied().ok_or(Bail)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Scan<()> {
        if self.peek()? == want {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Consumes `word` if it is next (the caller has peeked its first byte).
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Only white space is left.
    pub(crate) fn finish(mut self) -> Scan<()> {
        self.ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Skips the rest of a string whose opening quote is consumed; true when it held an escape.
    fn string_body(&mut self) -> Scan<bool> {
        let b = self.bytes;
        let mut i = self.pos;
        let mut escaped = false;
        loop {
            i = plain_run_end(b, i);
            match *b.get(i).ok_or(Bail)? {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    i = match *b.get(i + 1).ok_or(Bail)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i + 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6).ok_or(Bail)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Bail);
                            }
                            i + 6
                        }
                        _ => return Err(Bail),
                    };
                }
                c if c < 0x20 => return Err(Bail),
                _ => i += 1,
            }
        }
    }

    /// A string that is kept (a key or a field's value): escape-free UTF-8, borrowed.
    fn kept_str(&mut self) -> Scan<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        if self.string_body()? {
            return Err(Bail);
        }
        std::str::from_utf8(&self.bytes[start..self.pos - 1]).map_err(|_| Bail)
    }

    /// Skips a number, checking JSON's grammar as serde_json does.
    fn number(&mut self) -> Scan<()> {
        let b = self.bytes;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Bail),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(Bail);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Bail);
            }
        }
        self.pos = i;
        Ok(())
    }

    /// Skips any value, without recursion and without keeping any of it.
    pub(crate) fn skip_value(&mut self) -> Scan<()> {
        self.stack.clear();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    self.string_body()?;
                }
                b'{' => {
                    self.pos += 1;
                    if self.peek()? == b'}' {
                        self.pos += 1;
                    } else {
                        self.stack.push(true);
                        self.skip_member_key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.pos += 1;
                    if self.peek()? == b']' {
                        self.pos += 1;
                    } else {
                        self.stack.push(false);
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Bail),
            }
            // A value is complete: close what it completes, or go on to the next member.
            loop {
                let Some(&in_object) = self.stack.last() else {
                    return Ok(());
                };
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        if in_object {
                            self.skip_member_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    b']' if !in_object => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    _ => return Err(Bail),
                }
            }
        }
    }

    fn skip_member_key(&mut self) -> Scan<()> {
        self.eat(b'"')?;
        self.string_body()?;
        self.eat(b':')
    }

    /// True, and consumed, when the next value is `null`.
    pub(crate) fn null(&mut self) -> Scan<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// `null` or a kept string.
    pub(crate) fn opt_str(&mut self) -> Scan<Option<&'a str>> {
        if self.null()? {
            Ok(None)
        } else {
            self.kept_str().map(Some)
        }
    }

    /// `null` or an integer that fits in a u64 (anything else is serde_json's to judge).
    pub(crate) fn opt_u64(&mut self) -> Scan<Option<u64>> {
        if self.null()? {
            return Ok(None);
        }
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        let mut value: u64 = 0;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or(Bail)?;
            i += 1;
        }
        let leading_zero = b[start..i].len() > 1 && b[start] == b'0';
        if i == start || leading_zero || matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            return Err(Bail);
        }
        self.pos = i;
        Ok(Some(value))
    }

    pub(crate) fn bool(&mut self) -> Scan<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(Bail),
        }
    }

    /// Walks an object: `member` is called with each key and must consume its value.
    pub(crate) fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Scan<()>) -> Scan<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.kept_str()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// Walks an array: `element` is called for each element and must consume it.
    pub(crate) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }
}

/// Marks a struct's field as seen; a second sighting is serde's `duplicate field` error, so the
/// scanner gives up.
pub(crate) fn first_sight(seen: &mut u32, field: u32) -> Scan<()> {
    if *seen & (1 << field) != 0 {
        return Err(Bail);
    }
    *seen |= 1 << field;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(doc: &str) -> bool {
        let mut s = Scanner::new(doc.as_bytes());
        s.skip_value().is_ok() && s.finish().is_ok()
    }

    #[test]
    fn skips_what_serde_json_ignores_and_refuses_what_it_refuses() {
        let docs = [
            "0",
            "-0",
            "1.5e+3",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "[}",
            "{]",
            "{,}",
            "\"\\u00e9\"",
            "\"\\u00g9\"",
            "\"\\x\"",
            "\"a\u{1}\"",
            "\"\\ud800\"",
            "tru",
            "nul",
            "[[[]]]",
            "{\"a\":{\"b\":[1,2,{\"c\":null}]}}",
            "[1 2]",
            "{\"a\" 1}",
            "[true,false,null]",
            "\u{a0}1",
            "[\"0123456789abcdefghijklmnop\\n0123456789abcdef\\\"\"]",
            "\"unterminated 0123456789abcdef",
        ];
        for doc in docs {
            let reference = serde_json::from_str::<serde::de::IgnoredAny>(doc).is_ok();
            assert_eq!(skips(doc), reference, "{doc:?}");
        }
    }

    #[test]
    fn a_skipped_string_need_not_be_utf8_as_for_serde_json() {
        let doc = b"[\"\xff\xfe\"]";
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(doc).is_ok());
        let mut s = Scanner::new(doc);
        assert!(s.skip_value().is_ok());
        // A kept string must be UTF-8.
        assert_eq!(Scanner::new(b"\"\xff\"").opt_str(), Err(Bail));
    }

    #[test]
    fn integers_that_do_not_fit_are_left_to_serde_json() {
        assert_eq!(Scanner::new(b"18446744073709551615").opt_u64(), Ok(Some(u64::MAX)));
        for doc in ["18446744073709551616", "1.0", "1e3", "-1", "01", "\"1\""] {
            assert_eq!(Scanner::new(doc.as_bytes()).opt_u64(), Err(Bail), "{doc}");
        }
    }
}
