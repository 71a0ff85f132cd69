//! The generated text fields, appended straight into a column's value buffer.
//!
//! Shapes follow Beam's generator: "words" are runs of lowercase letters broken by spaces
//! (Beam's `nextString`), `extra` is lowercase letters whose length pads a row toward an
//! average size (Beam's `nextExtra`), URLs are three short words under
//! `https://www.nexmark.com/`. Nothing here allocates: strings are built in the caller's
//! buffer or in a small array on the stack.

use crate::format::u64_digits;
use crate::rng::{Draws, Filler, below, below16, letters8, word_table};

/// Words with spaces as separators.
const WORD_SPACE: [u8; 256] = word_table(b' ');
/// URL path words: underscores instead of spaces.
const WORD_UNDERSCORE: [u8; 256] = word_table(b'_');

/// Shortest "words" string before trimming (Beam's `MIN_STRING_LENGTH`).
const WORDS_LEN_MIN: u16 = 3;
/// Longest "words" string: auction descriptions (Beam's `nextString(100)`).
pub(crate) const WORDS_LEN_MAX: usize = 99;

/// The length of Beam's `nextString(max_len)`: uniform in `3..max_len`.
#[inline]
pub(crate) fn words_len(bits: u16, max_len: u16) -> usize {
    usize::from(WORDS_LEN_MIN + below16(bits, max_len - WORDS_LEN_MIN))
}

/// Draws needed for a string of `len` characters (8 characters per draw).
#[inline]
pub(crate) const fn draws_for(len: usize) -> u64 {
    len.div_ceil(8) as u64
}

/// Appends `len` characters of words (draws `first_draw..`), trimmed of leading and
/// trailing spaces as Beam does; returns the length appended.
#[inline]
pub(crate) fn push_words(out: &mut Vec<u8>, draws: Draws, first_draw: u64, len: usize) -> usize {
    debug_assert!(len <= WORDS_LEN_MAX);
    let mut buf = [0u8; WORDS_LEN_MAX.next_multiple_of(8)];
    for (k, chunk) in buf[..len.next_multiple_of(8)]
        .chunks_exact_mut(8)
        .enumerate()
    {
        let bits = draws.draw(first_draw + k as u64).to_le_bytes();
        for (c, b) in chunk.iter_mut().zip(bits) {
            *c = WORD_SPACE[usize::from(b)];
        }
    }
    let words = buf[..len].trim_ascii();
    out.extend_from_slice(words);
    words.len()
}

/// Appends Beam's `extra` padding for a row whose other fields take `current_size` bytes,
/// so that rows average about `avg_size` bytes: a length uniform in `[t - d, t + d)` with
/// `t = avg_size - current_size` and `d = round(t / 5)` (draw `size_draw`), of lowercase
/// letters (grown from draw `filler_draw`). Returns the length appended.
#[inline]
pub(crate) fn push_extra(
    out: &mut Vec<u8>,
    draws: Draws,
    size_draw: u64,
    filler_draw: u64,
    current_size: usize,
    avg_size: usize,
) -> usize {
    if current_size > avg_size {
        return 0;
    }
    let target = avg_size - current_size;
    // Java's Math.round(target * 0.2), exactly, in integers.
    let delta = (2 * target + 5) / 10;
    let len = if delta == 0 {
        target
    } else {
        target - delta + below(draws.draw(size_draw), 2 * delta as u64) as usize
    };
    // Whole words of 8 letters are written in place, then the excess cut off.
    let start = out.len();
    out.resize(start + len.next_multiple_of(8), 0);
    let mut filler = Filler::new(draws.draw(filler_draw));
    for chunk in out[start..].chunks_exact_mut(8) {
        chunk.copy_from_slice(&letters8(filler.next_word()));
    }
    out.truncate(start + len);
    len
}

/// Longest URL: the prefix, three 4-character words with their slashes, the item path,
/// and `&channel_id=` with an 11-character number.
const URL_LEN_MAX: usize = URL_PREFIX.len() + 3 * 5 + URL_ITEM.len() + URL_CHANNEL_ID.len() + 11;
const URL_PREFIX: &[u8] = b"https://www.nexmark.com/";
const URL_ITEM: &[u8] = b"item.htm?query=1";
const URL_CHANNEL_ID: &[u8] = b"&channel_id=";

/// A URL assembled on the stack, so that it reaches the column in one copy.
struct UrlBuf {
    buf: [u8; URL_LEN_MAX],
    len: usize,
}

impl UrlBuf {
    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// Builds a product URL, `https://www.nexmark.com/<w>/<w>/<w>/item.htm?query=1` with words
/// of 3 or 4 characters (draws 0..=3 of `draws`); also returns the bits of draw 0, whose
/// bits 3 and up the caller may use.
#[inline]
fn url(draws: Draws) -> (UrlBuf, u64) {
    let bits = draws.draw(0);
    let mut url = UrlBuf {
        buf: [0; URL_LEN_MAX],
        len: 0,
    };
    url.push(URL_PREFIX);
    for w in 0..3 {
        let chars = draws.draw(1 + w).to_le_bytes();
        let word = [
            WORD_UNDERSCORE[usize::from(chars[0])],
            WORD_UNDERSCORE[usize::from(chars[1])],
            WORD_UNDERSCORE[usize::from(chars[2])],
            WORD_UNDERSCORE[usize::from(chars[3])],
            b'/',
        ];
        if (bits >> w) & 1 == 1 {
            url.push(&word);
        } else {
            url.push(&[word[0], word[1], word[2], b'/']);
        }
    }
    url.push(URL_ITEM);
    (url, bits)
}

/// Appends a product URL (see [`url`]) without a channel id: the URLs of hot channels.
pub(crate) fn push_url(out: &mut Vec<u8>, draws: Draws) {
    let (url, _) = url(draws);
    out.extend_from_slice(&url.buf[..url.len]);
}

/// Appends the URL of cold channel `channel` (`draws` keyed by the channel number): half
/// of the channels add `&channel_id=<abs(reverse_bits(channel))>`, as Beam does (Java's
/// `Math.abs`, which leaves `i32::MIN` negative).
#[inline]
pub(crate) fn push_channel_url(out: &mut Vec<u8>, draws: Draws, channel: u32) {
    let (mut url, bits) = url(draws);
    if (bits >> 3) & 1 == 1 {
        url.push(URL_CHANNEL_ID);
        let id = (channel as i32).reverse_bits().wrapping_abs();
        if id < 0 {
            url.push(b"-");
        }
        let mut digits = [0u8; 20];
        let start = u64_digits(&mut digits, u64::from(id.unsigned_abs()));
        url.push(&digits[start..]);
    }
    out.extend_from_slice(&url.buf[..url.len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::domain_key;

    fn draws(id: u64) -> Draws {
        Draws::new(domain_key(42, 0), id)
    }

    #[test]
    fn words_are_trimmed_lowercase_with_spaces() {
        let mut saw_space = false;
        for id in 0..2000 {
            let mut out = Vec::new();
            let len = push_words(&mut out, draws(id), 0, WORDS_LEN_MAX);
            assert_eq!(len, out.len());
            assert!(len <= WORDS_LEN_MAX);
            assert!(out.iter().all(|&c| c == b' ' || c.is_ascii_lowercase()));
            assert!(out.first() != Some(&b' ') && out.last() != Some(&b' '));
            saw_space |= out.contains(&b' ');
        }
        assert!(saw_space);
        for bits in [0, u16::MAX] {
            let len = words_len(bits, 20);
            assert!((3..20).contains(&len));
        }
    }

    #[test]
    fn extra_pads_toward_the_average() {
        let mut total = 0;
        let rows = 10_000;
        for id in 0..rows {
            let mut out = b"xy".to_vec();
            let len = push_extra(&mut out, draws(id), 0, 1, 32, 100);
            assert_eq!(out.len(), 2 + len);
            assert!((54..82).contains(&len), "{len}");
            assert!(out[2..].iter().all(u8::is_ascii_lowercase));
            total += len;
        }
        let mean = total as f64 / rows as f64;
        assert!((66.0..70.0).contains(&mean), "{mean}");
        let mut out = Vec::new();
        assert_eq!(push_extra(&mut out, draws(0), 0, 1, 101, 100), 0);
        assert_eq!(push_extra(&mut out, draws(0), 0, 1, 98, 100), 2);
    }

    #[test]
    fn urls_have_the_nexmark_shape() {
        let mut with_id = 0;
        for channel in 0..1000u32 {
            let mut out = Vec::new();
            push_channel_url(&mut out, draws(u64::from(channel)), channel);
            let url = String::from_utf8(out).expect("ascii");
            let rest = url
                .strip_prefix("https://www.nexmark.com/")
                .expect("prefix");
            let (path, query) = rest.split_once("/item.htm?query=1").expect("item");
            let words: Vec<&str> = path.split('/').collect();
            assert_eq!(words.len(), 3, "{url}");
            for w in words {
                assert!((3..=4).contains(&w.len()), "{url}");
                assert!(
                    w.bytes().all(|c| c == b'_' || c.is_ascii_lowercase()),
                    "{url}"
                );
            }
            if let Some(id) = query.strip_prefix("&channel_id=") {
                let id: i64 = id.parse().expect("number");
                assert_eq!(
                    id,
                    i64::from((channel as i32).reverse_bits().wrapping_abs())
                );
                with_id += 1;
            } else {
                assert_eq!(query, "");
            }
        }
        assert!((400..600).contains(&with_id), "{with_id}");
    }
}
