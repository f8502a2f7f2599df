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

use super::block;

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

/// Checks the escape whose backslash precedes byte `at` (that byte is the escape's letter):
/// one of JSON's escapes, `\u` with four hex digits.
#[inline(always)]
fn check_escape(b: &[u8], at: usize) -> Scan<()> {
    // The escapes of JSON text and of multi-line text held in a string, the most frequent,
    // without a call.
    match b.get(at) {
        Some(b'"' | b'\\' | b'n') => Ok(()),
        _ => check_other_escape(b, at),
    }
}

fn check_other_escape(b: &[u8], at: usize) -> Scan<()> {
    match *b.get(at).ok_or(Bail)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
        b'u' => match b.get(at + 1..at + 5) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(()),
            _ => Err(Bail),
        },
        _ => Err(Bail),
    }
}

/// One 64-byte block of a string's body that starts at `b[i]` (`block` is those bytes, or the
/// last ones padded with zero bytes, which end the string as control characters would): the
/// offset of the closing quote when the block holds it. Every escape before it is checked, and
/// `escaped` set when there is one; `carry` is the odd backslash run across blocks
/// ([`block::escaped`]).
#[inline(always)]
fn string_block(b: &[u8], block: &[u8; 64], i: usize, carry: &mut bool, escaped: &mut bool) -> Scan<Option<usize>> {
    let (quotes, others) = block::quotes_and_others(block);
    if others == 0 && !*carry {
        return Ok((quotes != 0).then(|| quotes.trailing_zeros() as usize));
    }
    let masks = block::masks(block);
    let escapes = block::escaped(masks.backslash, carry);
    let quotes = quotes & !escapes;
    // The bytes before the first closing quote: all of them when there is none.
    let before = quotes.wrapping_sub(1) & !quotes;
    if masks.control & before != 0 {
        return Err(Bail);
    }
    let mut letters = escapes & before;
    if letters != 0 {
        *escaped = true;
        while letters != 0 {
            check_escape(b, i + letters.trailing_zeros() as usize)?;
            letters &= letters - 1;
        }
    }
    Ok((quotes != 0).then(|| quotes.trailing_zeros() as usize))
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

    /// Skips JSON white space: a newline and the indentation after it in one step of 16 bytes
    /// (Terraform indents by two spaces a level), a lone space in one of one.
    #[inline]
    fn ws(&mut self) {
        let b = self.bytes;
        let mut i = self.pos;
        // Most keys and values follow their `,`, `:`, `{` or `[` directly or after one space:
        // a byte above the space is no white space, so one comparison tells.
        match b.get(i) {
            Some(&c) if c > b' ' => return,
            Some(b' ') if b.get(i + 1).is_some_and(|&c| c > b' ') => {
                self.pos = i + 1;
                return;
            }
            _ => {}
        }
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
            // One space (after a `:` in indented output) needs no block.
            if !matches!(b.get(i + 1), Some(b' ' | b'\n' | b'\t' | b'\r')) {
                i += 1;
                break;
            }
            match b.get(i..i + 16).and_then(|s| <&[u8; 16]>::try_from(s).ok()) {
                Some(block) => match block::not_blank(block) {
                    0 => i += 16,
                    rest => {
                        i += rest.trailing_zeros() as usize;
                        break;
                    }
                },
                None => i += 1,
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
    /// The first 32 bytes in two steps of 16, then 64 bytes at a time: a control character or a bad
    /// escape anywhere before the closing quote is refused, as a byte-by-byte walk would.
    #[inline]
    fn string_body(&mut self) -> Scan<bool> {
        let b = self.bytes;
        let mut i = self.pos;
        // Most strings (keys, names, identifiers) are plain and end within 16 bytes, and most
        // of the others (identifiers, dates, addresses) within 32.
        for _ in 0..2 {
            let Some(head) = b.get(i..i + 16).and_then(|s| <&[u8; 16]>::try_from(s).ok()) else {
                break;
            };
            match block::stops16(head) {
                0 => i += 16,
                stops => {
                    let at = i + stops.trailing_zeros() as usize;
                    return match b[at] {
                        b'"' => {
                            self.pos = at + 1;
                            Ok(false)
                        }
                        // The blocks start at the first escape: nothing before it is escaped.
                        b'\\' => self.string_blocks(at),
                        _ => Err(Bail),
                    };
                }
            }
        }
        self.string_blocks(i)
    }

    /// The rest of a string's body from `b[i]`, 64 bytes at a time; apart from the head that
    /// [`Self::string_body`] takes, so that the short strings' path stays small.
    #[inline(never)]
    fn string_blocks(&mut self, mut i: usize) -> Scan<bool> {
        let b = self.bytes;
        let (mut carry, mut escaped) = (false, false);
        loop {
            let end = match b.get(i..i + 64).and_then(|s| <&[u8; 64]>::try_from(s).ok()) {
                Some(block) => string_block(b, block, i, &mut carry, &mut escaped)?,
                None => {
                    // The input's end pads the last block: a string that reaches it is refused.
                    let rest = b.get(i..).ok_or(Bail)?;
                    let mut last = [0; 64];
                    last[..rest.len()].copy_from_slice(rest);
                    string_block(b, &last, i, &mut carry, &mut escaped)?
                }
            };
            if let Some(end) = end {
                self.pos = i + end + 1;
                return Ok(escaped);
            }
            i += 64;
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

    /// An object's key, escape-free, as bytes: the callers only compare it with names they know
    /// (or keep it as a map's key), so it is made no `str`. It is checked to be UTF-8, as
    /// serde_json checks every key, only when it is not ASCII.
    fn key(&mut self) -> Scan<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.pos;
        if self.string_body()? {
            return Err(Bail);
        }
        let key = &self.bytes[start..self.pos - 1];
        if !key.is_ascii() && std::str::from_utf8(key).is_err() {
            return Err(Bail);
        }
        Ok(key)
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

    /// A skipped member's key and its `:`, which follows the key directly in the output of
    /// Terraform and of most writers.
    #[inline(always)]
    fn skip_member_key(&mut self) -> Scan<()> {
        self.eat(b'"')?;
        self.string_body()?;
        if self.bytes.get(self.pos) == Some(&b':') {
            self.pos += 1;
            Ok(())
        } else {
            self.eat(b':')
        }
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

    /// Walks an object: `member` is called with each key ([`Self::key`]) and must consume its
    /// value.
    pub(crate) fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Scan<()>) -> Scan<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
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

    /// White space of every kind and length before and after keys, colons and values, where
    /// one space or none takes the short path and anything else the blocks; the byte after it
    /// is a value, a structural byte or one that ends the document wrongly.
    #[test]
    fn white_space_around_keys_colons_and_values_agrees_with_serde_json() {
        let spaces = [
            "", " ", "  ", "\n", " \n", "\n  ", "\t", "\r\n", " \u{1}", "\u{1}", "\u{b}", "\u{c}",
        ];
        let mut long = String::from("\n");
        long.push_str(&" ".repeat(40));
        for ws in spaces.iter().copied().chain([long.as_str()]) {
            for template in [
                "{W\"a\"W:W1W}",
                "{\"a\":W[W1W,W\"x\"W]W,W\"b\"W:Wtrue}",
                "[W{W}W,W[W]W,Wnull]",
                "{\"k\"W:W{\"n\"W:W-1.5e3W}W}",
                "W\"s\"W",
            ] {
                let doc = template.replace('W', ws);
                let reference = serde_json::from_str::<serde::de::IgnoredAny>(&doc).is_ok();
                assert_eq!(skips(&doc), reference, "{doc:?}");
                // Walked as an object, keys read by the scanner, when the document is one.
                if doc.trim_start().starts_with('{') {
                    let mut s = Scanner::new(doc.as_bytes());
                    let walked = s.object(|s, _| s.skip_value()).is_ok() && s.finish().is_ok();
                    assert_eq!(walked, reference, "{doc:?}");
                }
            }
        }
    }

    /// Escapes are checked whichever letter they have, the ones taken without a call
    /// (`\"`, `\\`, `\n`) and the others, in a key and in a value, at every offset of a block.
    #[test]
    fn every_escape_letter_in_skipped_keys_and_values_agrees_with_serde_json() {
        for letter in 0u8..=0x7f {
            for at in [0, 1, 14, 15, 16, 62, 63, 64, 65] {
                let mut text = "a".repeat(at).into_bytes();
                text.extend_from_slice(&[b'\\', letter]);
                text.extend_from_slice(b"0041bc");
                let quoted = [&b"\""[..], &text, b"\""].concat();
                let member = [&b"{"[..], &quoted, b":", &quoted, b"}"].concat();
                for doc in [quoted, member] {
                    let reference = serde_json::from_slice::<serde::de::IgnoredAny>(&doc).is_ok();
                    let mut s = Scanner::new(&doc);
                    assert_eq!(s.skip_value().is_ok() && s.finish().is_ok(), reference, "{doc:?}");
                }
            }
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

    /// The string walk one byte after another: where the string's body at `i` ends (after its
    /// closing quote) and whether it held an escape.
    fn string_one_by_one(b: &[u8], mut i: usize) -> Scan<(usize, bool)> {
        let mut escaped = false;
        loop {
            match *b.get(i).ok_or(Bail)? {
                b'"' => return Ok((i + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    check_escape(b, i + 1)?;
                    i += if b[i + 1] == b'u' { 6 } else { 2 };
                }
                c if c < 0x20 => return Err(Bail),
                _ => i += 1,
            }
        }
    }

    /// The scanner's string walk of `doc` (a string from its opening quote) is the byte-by-byte
    /// one's, and accepts what serde_json accepts, alone and as a key.
    fn string_agrees(doc: &[u8]) {
        let mut s = Scanner::new(doc);
        s.pos = 1;
        let walked = s.string_body().map(|escaped| (s.pos, escaped));
        assert_eq!(walked, string_one_by_one(doc, 1), "{:?}", String::from_utf8_lossy(doc));
        let whole = walked.is_ok_and(|(end, _)| doc[end..].iter().all(u8::is_ascii_whitespace));
        let reference = serde_json::from_slice::<serde::de::IgnoredAny>(doc).is_ok();
        assert_eq!(whole, reference, "{:?}", String::from_utf8_lossy(doc));
        let mut skipped = Scanner::new(doc);
        assert_eq!(skipped.skip_value().is_ok() && skipped.finish().is_ok(), reference);
    }

    /// `"` + `before` times `a` + `middle` + `after` times `b` + `end`.
    fn string(before: usize, middle: &[u8], after: usize, end: &[u8]) -> Vec<u8> {
        let mut doc = b"\"".to_vec();
        doc.resize(1 + before, b'a');
        doc.extend_from_slice(middle);
        doc.resize(doc.len() + after, b'b');
        doc.extend_from_slice(end);
        doc
    }

    #[test]
    fn quotes_and_escapes_at_every_offset_of_a_block_and_the_next() {
        for at in 0..130 {
            for end in [
                &b"\""[..],
                b"\"  ",
                b"\"\n  0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ] {
                string_agrees(&string(at, b"", 0, end));
                string_agrees(&string(at, b"\\\"", 70, end));
                string_agrees(&string(at, b"\\\\", 3, end));
                string_agrees(&string(at, b"\\u00e9", 1, end));
                string_agrees(&string(at, b"\\n\\t\\/\\b\\f\\r", 64, end));
            }
        }
    }

    #[test]
    fn backslash_runs_across_block_edges() {
        // The body starts at byte 1, so a block edge falls after body byte 63, 127, ...
        for edge in [63, 127, 191] {
            for run in 1..=9 {
                for shift in 0..=run {
                    let before = edge + shift - run;
                    for then in [&b"\""[..], b"\"\"", b"x\"", b"u0041\"", b"u004\"", b"\x01\""] {
                        string_agrees(&string(before, &vec![b'\\'; run], 0, then));
                    }
                }
            }
        }
        // A run as long as a block, and longer.
        for run in [62, 63, 64, 65, 127, 128, 129] {
            string_agrees(&string(0, &vec![b'\\'; run], 0, b"\"\""));
            string_agrees(&string(1, &vec![b'\\'; run], 5, b"\""));
        }
    }

    #[test]
    fn control_bytes_and_bad_escapes_are_refused_at_every_offset() {
        for at in 0..130 {
            for bad in [
                &b"\x00"[..],
                b"\x1f",
                b"\n",
                b"\t",
                b"\\x",
                b"\\u12g4",
                b"\\u12",
                b"\\U0041",
                b"\\\x01",
                b"\\ ",
            ] {
                string_agrees(&string(at, bad, 2, b"\""));
                string_agrees(&string(at, bad, 100, b"\""));
            }
            // Allowed: DEL and bytes above it, which are not control characters in JSON.
            string_agrees(&string(at, b"\x7f\x80\xff", 2, b"\""));
        }
    }

    #[test]
    fn truncated_anywhere_a_string_is_refused() {
        let doc = string(30, b"\\\"\\\\\\u00e9\\n", 100, b"\\\\\"");
        string_agrees(&doc);
        for end in 0..doc.len() {
            if end > 0 {
                assert_eq!(Scanner::at(&doc[..end], 1).string_body(), Err(Bail), "end {end}");
            }
            let mut s = Scanner::new(&doc[..end]);
            assert_eq!(s.skip_value(), Err(Bail), "end {end}");
        }
    }

    #[test]
    fn kept_strings_and_keys_are_utf8_on_both_sides_of_a_block_edge() {
        for at in 0..130 {
            for (middle, utf8) in [
                ("é".as_bytes(), true),
                ("😀".as_bytes(), true),
                (&b"\xff"[..], false),
                (&b"\xc3"[..], false),
                (&b"\xed\xa0\x80"[..], false),
            ] {
                let doc = string(at, middle, 3, b"\"");
                let kept = Scanner::new(&doc).opt_str();
                assert_eq!(kept.is_ok(), utf8, "at {at}: {middle:?}");
                assert_eq!(
                    kept.ok().flatten().map(str::as_bytes),
                    utf8.then_some(&doc[1..doc.len() - 1])
                );
                // As a key: refused by both when it is not UTF-8; skipped, taken by both.
                let mut object = doc.clone();
                object.insert(0, b'{');
                object.extend_from_slice(b":1}");
                let mut s = Scanner::new(&object);
                assert_eq!(s.object(|s, _| s.skip_value()).is_ok(), utf8, "at {at}: {middle:?}");
                assert_eq!(
                    serde_json::from_slice::<std::collections::BTreeMap<String, u8>>(&object).is_ok(),
                    utf8
                );
                string_agrees(&doc);
            }
        }
    }

    #[test]
    fn integers_that_do_not_fit_are_left_to_serde_json() {
        assert_eq!(Scanner::new(b"18446744073709551615").opt_u64(), Ok(Some(u64::MAX)));
        for doc in ["18446744073709551616", "1.0", "1e3", "-1", "01", "\"1\""] {
            assert_eq!(Scanner::new(doc.as_bytes()).opt_u64(), Err(Bail), "{doc}");
        }
    }
}
