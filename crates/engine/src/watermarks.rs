//! The watermark of each stream a view reads, as its runner tells the operators.
//!
//! A stream without an entry has no watermark yet (no event read from some partition
//! that is not idle). An entry only ever advances ([`Watermark::advance`] asserts it), and
//! [`Watermark::MAX`] means the stream has ended: every window over it is final.

use freshet_types::Watermark;
use std::collections::HashMap;

/// Each stream's watermark, by stream name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamWatermarks(HashMap<String, Watermark>);

impl StreamWatermarks {
    /// `stream`'s watermark, `None` while unknown.
    pub fn get(&self, stream: &str) -> Option<Watermark> {
        self.0.get(stream).copied()
    }

    /// Moves `stream`'s watermark to `to` if that is later; returns whether it moved.
    /// Never goes back.
    pub fn advance(&mut self, stream: &str, to: Watermark) -> bool {
        match self.0.get_mut(stream) {
            Some(w) if *w >= to => false,
            Some(w) => {
                w.advance(to);
                true
            }
            None => {
                self.0.insert(stream.to_owned(), to);
                true
            }
        }
    }

    /// The least watermark over `streams`; `None` if any is unknown (or none is given).
    pub fn least<'a>(&self, streams: impl IntoIterator<Item = &'a str>) -> Option<Watermark> {
        let mut least: Option<Watermark> = None;
        for s in streams {
            let w = self.get(s)?;
            least = Some(least.map_or(w, |l| l.min(w)));
        }
        least
    }

    /// Every stream and its watermark.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Watermark)> {
        self.0.iter().map(|(s, w)| (s.as_str(), *w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_only_advance_and_the_least_needs_every_stream() {
        let mut w = StreamWatermarks::default();
        assert!(w.advance("a", Watermark(10)));
        assert!(!w.advance("a", Watermark(5)));
        assert_eq!(w.get("a"), Some(Watermark(10)));
        assert_eq!(w.least(["a", "b"]), None);
        assert!(w.advance("b", Watermark(7)));
        assert_eq!(w.least(["a", "b"]), Some(Watermark(7)));
        assert!(w.advance("b", Watermark::MAX));
        assert_eq!(w.least(["a", "b"]), Some(Watermark(10)));
    }
}
