//! Walking one large array (a huge state's `resources`) on several threads, with the answer of
//! walking it on one.
//!
//! The array's bytes are cut into pieces at places that look like the start of an element: a `,`,
//! the same white space that precedes the first element, and `{` (in Terraform's indented output
//! only an element of this array starts so). Each piece is walked from its start, element by
//! element, until it arrives exactly at the start of the next piece. A piece's result counts only
//! when the walk before it arrived exactly there: the walk of an element depends on nothing but
//! the bytes from its start, so a piece walked from a place the one-thread walk also reaches
//! between two elements gives what that walk gives from there. A guess that is not such a place
//! (the pattern inside a string, say) is passed over by the piece before it, and the walk goes
//! on from where that piece stopped, on one thread. A piece that gives up ([`Bail`]) makes the
//! whole document give up only when its start is confirmed, which is when the one-thread walk
//! would give up too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::scan::{Bail, Scan, Scanner};

/// How one piece ended.
enum Piece<A> {
    /// At the start of the next piece, between two elements.
    Arrived(A),
    /// Between two elements, past the start of the next piece (which is then no element's).
    Passed(A, usize),
    /// At the array's end; the position after its `]`.
    Closed(A, usize),
    Bailed,
}

/// Walks the array at `s`'s position with `element` (which adds what an element holds to the
/// accumulator); in pieces of about `chunk` bytes when the array is long, on at most `threads`
/// threads (this one included; with 1 the pieces are walked one after another here).
/// `merge` adds one accumulator to another and must agree with walking the elements in order.
pub(crate) fn array<'a, A, F>(
    s: &mut Scanner<'a>,
    chunk: usize,
    threads: usize,
    element: F,
    merge: fn(&mut A, A),
) -> Scan<A>
where
    A: Default + Send,
    F: Fn(&mut Scanner<'a>, &mut A) -> Scan<()> + Sync,
{
    let mut total = A::default();
    if s.open_array()? {
        return Ok(total);
    }
    let bytes = s.input();
    let first = s.position();
    let starts = guesses(bytes, first, chunk);
    if starts.len() < 2 {
        return match walk(bytes, first, usize::MAX, &element) {
            Piece::Closed(a, end) => {
                *s = Scanner::at(bytes, end);
                Ok(a)
            }
            _ => Err(Bail),
        };
    }
    let pieces = walk_all(bytes, &starts, threads, &element);
    let mut i = 0;
    let mut piece = take(&pieces[0]);
    loop {
        match piece {
            Piece::Arrived(a) => {
                merge(&mut total, a);
                i += 1;
                piece = take(&pieces[i]);
            }
            Piece::Closed(a, end) => {
                merge(&mut total, a);
                *s = Scanner::at(bytes, end);
                return Ok(total);
            }
            Piece::Bailed => return Err(Bail),
            Piece::Passed(a, at) => {
                merge(&mut total, a);
                // The first start at or after `at`: taken when the walk is exactly there, else
                // walked to from `at` on this thread.
                let next = starts.partition_point(|&start| start < at);
                if starts.get(next) == Some(&at) {
                    i = next;
                    piece = take(&pieces[i]);
                } else {
                    i = next - 1;
                    piece = walk(bytes, at, starts.get(next).copied().unwrap_or(usize::MAX), &element);
                }
            }
        }
    }
}

fn take<A>(slot: &Mutex<Option<Piece<A>>>) -> Piece<A> {
    slot.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(Piece::Bailed)
}

/// The starts of the pieces: the first element's, then the guessed element starts about every
/// `chunk` bytes (increasing).
fn guesses(bytes: &[u8], first: usize, chunk: usize) -> Vec<usize> {
    let mut starts = vec![first];
    if bytes.get(first) != Some(&b'{') || bytes.len() - first < chunk.saturating_mul(2) {
        return starts;
    }
    let lead_start = bytes[..first].iter().rposition(|&c| c == b'[').map_or(first, |i| i + 1);
    let mut pattern = vec![b','];
    pattern.extend_from_slice(&bytes[lead_start..first]);
    pattern.push(b'{');
    let mut from = first.saturating_add(chunk);
    while from + pattern.len() < bytes.len() {
        let Some(found) = bytes[from..].windows(pattern.len()).position(|w| w == pattern) else {
            break;
        };
        let start = from + found + pattern.len() - 1;
        starts.push(start);
        from = start.saturating_add(chunk);
    }
    starts
}

/// Walks every piece, on `threads` threads (this one included; none is spawned for 1 or 0).
fn walk_all<'a, A, F>(bytes: &'a [u8], starts: &[usize], threads: usize, element: &F) -> Vec<Mutex<Option<Piece<A>>>>
where
    A: Default + Send,
    F: Fn(&mut Scanner<'a>, &mut A) -> Scan<()> + Sync,
{
    let pieces: Vec<Mutex<Option<Piece<A>>>> = starts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&start) = starts.get(i) else { return };
            let limit = starts.get(i + 1).copied().unwrap_or(usize::MAX);
            let piece = walk(bytes, start, limit, element);
            *pieces[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(piece);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(starts.len()) {
            scope.spawn(work);
        }
        work();
    });
    pieces
}

/// Walks elements from `start` (an element's first byte) until the walk is between two elements
/// at or past `limit`, or the array ends.
fn walk<'a, A: Default, F>(bytes: &'a [u8], start: usize, limit: usize, element: &F) -> Piece<A>
where
    F: Fn(&mut Scanner<'a>, &mut A) -> Scan<()>,
{
    let mut s = Scanner::at(bytes, start);
    let mut acc = A::default();
    loop {
        if element(&mut s, &mut acc).is_err() {
            return Piece::Bailed;
        }
        match s.next_element() {
            Ok(true) if s.position() == limit => return Piece::Arrived(acc),
            Ok(true) if s.position() > limit => return Piece::Passed(acc, s.position()),
            Ok(true) => {}
            Ok(false) => return Piece::Closed(acc, s.position()),
            Err(Bail) => return Piece::Bailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the elements of the array and the `"n"` members of each, as a state's resources.
    fn count(bytes: &[u8], chunk: usize) -> Scan<(u64, usize)> {
        let on_two = count_on(bytes, chunk, 2);
        assert_eq!(count_on(bytes, chunk, 1), on_two, "one thread and two disagree");
        on_two
    }

    fn count_on(bytes: &[u8], chunk: usize, threads: usize) -> Scan<(u64, usize)> {
        let mut s = Scanner::new(bytes);
        let n = array(
            &mut s,
            chunk,
            threads,
            |s, n: &mut u64| {
                s.skip_value()?;
                *n += 1;
                Ok(())
            },
            |total, more| *total += more,
        )?;
        Ok((n, s.position()))
    }

    fn document(pretty: bool) -> Vec<u8> {
        let elements: Vec<serde_json::Value> = (0..300)
            .map(|i| {
                serde_json::json!({
                    "mode": "managed",
                    "note": ",\n  {\"fake\": 1} ,{ ,{",
                    "instances": [{"a": [{"b": i}, {"c": [i, {}]}]}, {}],
                })
            })
            .collect();
        let value = serde_json::Value::Array(elements);
        if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        }
    }

    #[test]
    fn pieces_give_the_answer_of_one_walk() {
        for pretty in [true, false] {
            let doc = document(pretty);
            let whole = count(&doc, usize::MAX / 4);
            assert_eq!(whole, Ok((300, doc.len())));
            // Indented output is cut at element starts only; compact output also at `,{` inside
            // elements, which the walk must pass over.
            let starts = guesses(&doc, 1 + usize::from(pretty) * 3, 100);
            assert!(starts.len() > 50, "{}", starts.len());
            for chunk in [1, 10, 100, 1000, 10_000] {
                assert_eq!(count(&doc, chunk), whole, "pretty {pretty}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_piece_that_gives_up_counts_only_where_the_walk_reaches() {
        let doc = document(true);
        // Damage near the end: every walk gives up.
        let mut broken = doc.clone();
        let at = doc.len() - 40;
        broken[at] = b'}';
        assert_eq!(count(&broken, 100), count(&broken, usize::MAX / 4));
        assert_eq!(count(&broken, 100), Err(Bail));
        // Truncated anywhere: as the one walk.
        for end in (0..doc.len()).step_by(997) {
            assert_eq!(count(&doc[..end], 100), count(&doc[..end], usize::MAX / 4), "end {end}");
        }
    }
}
