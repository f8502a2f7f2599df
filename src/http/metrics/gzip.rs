//! gzip bodies assembled from two pieces, so that the large piece is compressed once per snapshot:
//! the small head (counters, process metrics: new on every scrape) is deflated with a sync flush,
//! which ends it on a byte boundary without ending the stream; the cached tail is a deflate stream
//! of its own, whose back-references stay within itself. Head then tail is one valid deflate
//! stream, framed as one gzip member (RFC 1952) whose CRC-32 combines the two pieces' CRCs. Any
//! gzip reader takes it, single-member readers included.

use std::io::Write as _;

use crc32fast::Hasher;
use flate2::Compression;
use flate2::write::DeflateEncoder;

/// A piece compressed as the end of a deflate stream.
#[derive(Debug)]
pub(crate) struct Tail {
    deflated: Vec<u8>,
    crc: Hasher,
    len: u64,
}

/// The level of both pieces: metrics text is so repetitive that the fastest level already
/// shrinks it more than tenfold, and the tail of a large fleet is megabytes.
fn level() -> Compression {
    Compression::fast()
}

impl Tail {
    pub fn new(plain: &[u8]) -> Tail {
        let mut encoder = DeflateEncoder::new(Vec::with_capacity(plain.len() / 8 + 64), level());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(plain);
        let deflated = encoder.finish().unwrap_or_default();
        let mut crc = Hasher::new();
        crc.update(plain);
        Tail {
            deflated,
            crc,
            len: plain.len() as u64,
        }
    }
}

/// The gzip member of `head` followed by the tail's text.
pub(crate) fn assemble(head: &[u8], tail: &Tail) -> Vec<u8> {
    // A fixed header: no name, no time, unknown OS (255).
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(head.len() / 4 + 64), level());
    let _ = encoder.write_all(head);
    // A sync flush: every byte of the head written, the stream not ended.
    let _ = encoder.flush();
    let head_deflated = std::mem::take(encoder.get_mut());
    drop(encoder);
    let mut crc = Hasher::new();
    crc.update(head);
    crc.combine(&tail.crc);
    let len = head.len() as u64 + tail.len;
    let mut out = Vec::with_capacity(HEADER.len() + head_deflated.len() + tail.deflated.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&head_deflated);
    out.extend_from_slice(&tail.deflated);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&((len & 0xffff_ffff) as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        // A single-member reader: the body must be one member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn head_and_cached_tail_decode_to_the_two_texts() {
        let head = "# TYPE a counter\na_total 1\n".repeat(50);
        let tail_text = "m{root=\"/srv\",path=\"a/b\"} 1\n".repeat(5000);
        let tail = Tail::new(tail_text.as_bytes());
        let body = assemble(head.as_bytes(), &tail);
        assert_eq!(gunzip(&body), format!("{head}{tail_text}").into_bytes());
        assert!(body.len() * 10 < head.len() + tail_text.len(), "{} bytes", body.len());
        // Empty pieces are pieces too.
        assert_eq!(gunzip(&assemble(b"", &Tail::new(b""))), b"");
        assert_eq!(gunzip(&assemble(b"x", &Tail::new(b""))), b"x");
        assert_eq!(gunzip(&assemble(b"", &Tail::new(b"y"))), b"y");
    }
}
