//! Byte classes of a block of input, one bit a byte, for the scanner ([`super::scan`]): in a
//! block of string bytes the quotes, backslashes and control characters (16 bytes for the start
//! of a string, 64 for the rest), and which bytes an escape's backslash makes escaped; in a
//! 16-byte block of white space the first byte that is not JSON white space.
//!
//! On x86_64 with SSE2 (part of its baseline, so there is nothing to detect at run time), on
//! every other target with the same masks computed eight bytes at a time in a `u64` (SWAR); the
//! tests hold the two to each other.

/// Bit k of each mask stands for byte k of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Masks {
    pub(super) quote: u64,
    pub(super) backslash: u64,
    /// Bytes below 0x20, which a JSON string may hold only escaped.
    pub(super) control: u64,
}

/// The quotes, backslashes and control characters of a 64-byte block.
#[inline]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    {
        masks_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar::masks(block)
    }
}

/// Bit k set when byte k of `block` is a quote, a backslash or a control character: where a
/// run of plain string bytes ends.
#[inline]
pub(super) fn stops16(block: &[u8; 16]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        stops16_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar::stops16(block)
    }
}

/// The quotes of a 64-byte block, and its backslashes and control characters together: when the
/// second mask is empty, as in most blocks of a long string, the quotes are all there is to know.
#[inline]
pub(super) fn quotes_and_others(block: &[u8; 64]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        quotes_and_others_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let masks = swar::masks(block);
        (masks.quote, masks.backslash | masks.control)
    }
}

/// Bit k set when byte k of `block` is not JSON white space (space, `\n`, `\t`, `\r`).
#[inline]
pub(super) fn not_blank(block: &[u8; 16]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        not_blank_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar::not_blank(block)
    }
}

/// The bytes of a 64-byte block that an escape's backslash precedes (the byte after each
/// backslash that starts an escape: the first of a run, the third, ...). `carry` is true when the
/// previous block ended inside an odd run, so that this block's first byte is escaped; it is set
/// for the next block. Runs are told apart with one addition over the whole mask (as simdjson's
/// `find_escaped`): adding a run's start to the run carries out of its end, which marks
/// whether the run started on an even or an odd bit.
#[inline]
pub(super) fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    if backslash == 0 && !*carry {
        return 0;
    }
    let first_escaped = u64::from(*carry);
    // A backslash that the previous block's escapes is no escape's start.
    let backslash = backslash & !first_escaped;
    let follows_backslash = (backslash << 1) | first_escaped;
    let odd_starts = backslash & !EVEN & !follows_backslash;
    let (even_started, overflow) = odd_starts.overflowing_add(backslash);
    *carry = overflow;
    (EVEN ^ (even_started << 1)) & follows_backslash
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn masks_sse2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8};
    let mut masks = Masks {
        quote: 0,
        backslash: 0,
        control: 0,
    };
    for (k, part) in block.chunks_exact(16).enumerate() {
        let shift = 16 * k;
        // SAFETY: SSE2 is part of the x86_64 baseline, so the instructions exist wherever this
        // compiles; `part` is 16 bytes long (chunks_exact), exactly what the unaligned load reads.
        let (quote, backslash, control) = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let control_max = _mm_set1_epi8(0x1f);
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))),
                // Unsigned c <= 0x1f exactly when max(c, 0x1f) is 0x1f.
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, control_max), control_max)),
            )
        };
        // A movemask sets the low 16 bits only.
        masks.quote |= u64::from(quote as u16) << shift;
        masks.backslash |= u64::from(backslash as u16) << shift;
        masks.control |= u64::from(control as u16) << shift;
    }
    masks
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn stops16_sse2(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads exactly the 16 bytes
    // `block` borrows.
    let stops = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    u32::from(stops as u16)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn quotes_and_others_sse2(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let (mut quotes, mut others) = (0, 0);
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86_64 baseline; `part` is 16 bytes long (chunks_exact),
        // exactly what the unaligned load reads.
        let (quote, other) = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))),
                _mm_movemask_epi8(_mm_or_si128(backslash, control)),
            )
        };
        quotes |= u64::from(quote as u16) << (16 * k);
        others |= u64::from(other as u16) << (16 * k);
    }
    (quotes, others)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn not_blank_sse2(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads exactly the 16 bytes
    // `block` borrows.
    let blank = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(is(b' '), is(b'\n')),
            _mm_or_si128(is(b'\t'), is(b'\r')),
        ))
    };
    !u32::from(blank as u16) & 0xffff
}

/// The portable masks: compiled where SSE2 is missing, and on x86_64 for the tests that hold the
/// SSE2 ones to them.
#[cfg(any(test, not(target_arch = "x86_64")))]
mod swar {
    use super::Masks;

    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;

    /// High bit of each byte of `x` that is zero (exactly: no borrow runs between bytes).
    #[inline]
    fn zero_bytes(x: u64) -> u64 {
        !(((x & !HIGH) + !HIGH) | x) & HIGH
    }

    /// High bit of each byte of `x` equal to `c`.
    #[inline]
    fn equal_bytes(x: u64, c: u8) -> u64 {
        zero_bytes(x ^ (ONES * u64::from(c)))
    }

    /// One bit for each byte's high bit in `high`: bit k for byte k.
    #[inline]
    fn gather(high: u64) -> u64 {
        // Bit 8k of the shifted value lands on bit 56 + k of the product, and nothing else reaches
        // the top byte.
        ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    }

    pub(super) fn masks(block: &[u8; 64]) -> Masks {
        let mut masks = Masks {
            quote: 0,
            backslash: 0,
            control: 0,
        };
        for (k, part) in block.chunks_exact(8).enumerate() {
            let mut word = [0; 8];
            word.copy_from_slice(part);
            let x = u64::from_le_bytes(word);
            let shift = 8 * k;
            masks.quote |= gather(equal_bytes(x, b'"')) << shift;
            masks.backslash |= gather(equal_bytes(x, b'\\')) << shift;
            // (c & 0x7f) + 0x60 reaches 0x80 exactly when c & 0x7f >= 0x20; with c's own high bit,
            // the high bit is set for c >= 0x20.
            let at_least_space = ((x & !HIGH) + ONES * 0x60) | x;
            masks.control |= gather(!at_least_space & HIGH) << shift;
        }
        masks
    }

    pub(super) fn stops16(block: &[u8; 16]) -> u32 {
        let mut wide = [0; 64];
        wide[..16].copy_from_slice(block);
        let masks = masks(&wide);
        (masks.quote | masks.backslash | masks.control) as u32 & 0xffff
    }

    pub(super) fn not_blank(block: &[u8; 16]) -> u32 {
        let mut mask = 0;
        for (k, part) in block.chunks_exact(8).enumerate() {
            let mut word = [0; 8];
            word.copy_from_slice(part);
            let x = u64::from_le_bytes(word);
            let blank = equal_bytes(x, b' ') | equal_bytes(x, b'\n') | equal_bytes(x, b'\t') | equal_bytes(x, b'\r');
            mask |= (gather(!blank & HIGH) as u32) << (8 * k);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small generator, so that the tests need no crate for random blocks.
    fn bytes(seed: &mut u64, alphabet: &[u8], out: &mut [u8]) {
        for byte in out {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *byte = alphabet[(*seed >> 33) as usize % alphabet.len()];
        }
    }

    fn masks_one_by_one(block: &[u8; 64]) -> Masks {
        let bit = |f: &dyn Fn(u8) -> bool| (0..64).filter(|&k| f(block[k])).fold(0u64, |m, k| m | 1 << k);
        Masks {
            quote: bit(&|c| c == b'"'),
            backslash: bit(&|c| c == b'\\'),
            control: bit(&|c| c < 0x20),
        }
    }

    #[test]
    fn both_mask_implementations_match_a_byte_by_byte_count() {
        let mut seed = 7;
        let every: Vec<u8> = (0..=255).collect();
        for alphabet in [&every[..], b"\"\\ \n\ta\x00\x1f\x20\x7f\x80\xff\xdc\xa2"] {
            for _ in 0..2000 {
                let mut block = [0; 64];
                bytes(&mut seed, alphabet, &mut block);
                let expected = masks_one_by_one(&block);
                assert_eq!(masks(&block), expected, "{block:?}");
                assert_eq!(swar::masks(&block), expected, "{block:?}");
                let mut half = [0; 16];
                half.copy_from_slice(&block[..16]);
                let blank = (0..16)
                    .filter(|&k| !matches!(half[k], b' ' | b'\n' | b'\t' | b'\r'))
                    .fold(0u32, |m, k| m | 1 << k);
                assert_eq!(not_blank(&half), blank, "{half:?}");
                let stops = expected.quote | expected.backslash | expected.control;
                assert_eq!(stops16(&half), stops as u32 & 0xffff, "{half:?}");
                assert_eq!(swar::stops16(&half), stops as u32 & 0xffff, "{half:?}");
                let others = expected.backslash | expected.control;
                assert_eq!(quotes_and_others(&block), (expected.quote, others), "{block:?}");
                assert_eq!(swar::not_blank(&half), blank, "{half:?}");
            }
        }
    }

    /// The escaped bytes of a sequence of blocks, one byte after another.
    fn escaped_one_by_one(backslashes: &[bool]) -> Vec<bool> {
        let mut out = vec![false; backslashes.len()];
        let mut after_escape_start = false;
        for (k, &backslash) in backslashes.iter().enumerate() {
            if after_escape_start {
                out[k] = true;
                after_escape_start = false;
            } else if backslash {
                after_escape_start = true;
            }
        }
        out
    }

    #[test]
    fn escaped_bytes_match_a_byte_by_byte_walk_across_blocks() {
        let mut seed = 11;
        for density in [b"\\\\\\a".as_slice(), b"\\a", b"\\aaaaaaaaa", b"\\"] {
            for _ in 0..3000 {
                let mut text = [0; 64 * 4];
                bytes(&mut seed, density, &mut text);
                let flags: Vec<bool> = text.iter().map(|&c| c == b'\\').collect();
                let expected = escaped_one_by_one(&flags);
                let mut carry = false;
                for (k, block) in text.chunks_exact(64).enumerate() {
                    let mask = block
                        .iter()
                        .enumerate()
                        .fold(0u64, |m, (i, &c)| m | u64::from(c == b'\\') << i);
                    let got = escaped(mask, &mut carry);
                    let want = (0..64).filter(|&i| expected[64 * k + i]).fold(0u64, |m, i| m | 1 << i);
                    assert_eq!(got, want, "block {k} of {:?}", String::from_utf8_lossy(&text));
                }
            }
        }
        // Runs of every length ending at a block's last byte, whose next block starts with `"`.
        for run in 1..=64 {
            let mask = !0u64 << (64 - run);
            let mut carry = false;
            escaped(mask, &mut carry);
            assert_eq!(carry, run % 2 == 1, "run {run}");
            assert_eq!(escaped(0, &mut carry) & 1, u64::from(run % 2 == 1), "run {run}");
        }
    }
}
