//! Window table functions: `TUMBLE(stream, col, size)`, `HOP(stream, col, slide, size)` and
//! `SESSION(stream, col, gap)`, and the assignment of event times to windows.
//!
//! Windows are half-open, `[start, end)`, in event-time milliseconds. Tumbling windows are
//! aligned to the epoch, hopping windows to multiples of the slide. A session window is per
//! GROUP BY key and is only known once rows are grouped, so assignment here gives each row
//! its own `[t, t + gap)`; the aggregate merges overlapping ones (as Flink does).

use crate::error::{EngineError, Result};
use freshet_types::Window;
use serde::{Deserialize, Serialize};

/// The kind of window and its sizes in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumble {
        /// Window length.
        size_ms: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts.
        slide_ms: i64,
        /// Window length.
        size_ms: i64,
    },
    /// Per-key windows that close after `gap` without events.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
}

/// `TUMBLE(10s)`, `HOP(2s, 10s)` (slide, size), `SESSION(5s)`: for `DESCRIBE VIEW`.
impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WindowKind::Tumble { size_ms } => write!(f, "TUMBLE({})", ms_text(size_ms)),
            WindowKind::Hop { slide_ms, size_ms } => {
                write!(f, "HOP({}, {})", ms_text(slide_ms), ms_text(size_ms))
            }
            WindowKind::Session { gap_ms } => write!(f, "SESSION({})", ms_text(gap_ms)),
        }
    }
}

/// A positive length in ms as a duration (`10s`, `1m30s`, `250ms`).
pub fn ms_text(ms: i64) -> String {
    freshet_streams::duration::format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

impl WindowKind {
    /// Validate sizes: positive, and a hop's size a multiple of its slide.
    pub fn validate(self) -> Result<Self> {
        let bad = |m: String| Err(EngineError::Sql(m));
        match self {
            WindowKind::Tumble { size_ms } if size_ms <= 0 => {
                bad("TUMBLE size must be positive".into())
            }
            WindowKind::Hop { slide_ms, size_ms } if slide_ms <= 0 || size_ms <= 0 => {
                bad("HOP slide and size must be positive".into())
            }
            WindowKind::Hop { slide_ms, size_ms } if size_ms % slide_ms != 0 => bad(format!(
                "HOP size ({size_ms} ms) must be a multiple of its slide ({slide_ms} ms)"
            )),
            WindowKind::Session { gap_ms } if gap_ms <= 0 => {
                bad("SESSION gap must be positive".into())
            }
            ok => Ok(ok),
        }
    }

    /// Windows per event: 1, or size/slide for hopping windows.
    pub fn windows_per_event(self) -> usize {
        match self {
            WindowKind::Hop { slide_ms, size_ms } => (size_ms / slide_ms) as usize,
            _ => 1,
        }
    }

    /// The `k`-th window (0-based, earliest first) holding event time `t`.
    pub fn window(self, t: i64, k: usize) -> Window {
        let (start, size) = match self {
            WindowKind::Tumble { size_ms } => (t - t.rem_euclid(size_ms), size_ms),
            WindowKind::Hop { slide_ms, size_ms } => {
                let last_start = t - t.rem_euclid(slide_ms);
                let n = size_ms / slide_ms;
                (last_start - (n - 1 - k as i64) * slide_ms, size_ms)
            }
            WindowKind::Session { gap_ms } => (t, gap_ms),
        };
        Window::new(start, start + size)
    }

    /// The window length in ms, when it is fixed.
    pub fn size_ms(self) -> Option<i64> {
        match self {
            WindowKind::Tumble { size_ms } | WindowKind::Hop { size_ms, .. } => Some(size_ms),
            WindowKind::Session { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_are_epoch_aligned_and_half_open() {
        let w = WindowKind::Tumble { size_ms: 10 };
        assert_eq!(w.window(0, 0), Window::new(0, 10));
        assert_eq!(w.window(9, 0), Window::new(0, 10));
        assert_eq!(w.window(10, 0), Window::new(10, 20));
        assert_eq!(w.window(-1, 0), Window::new(-10, 0));
    }

    #[test]
    fn hopping_windows_cover_the_event() {
        let w = WindowKind::Hop {
            slide_ms: 2,
            size_ms: 10,
        };
        assert_eq!(w.windows_per_event(), 5);
        let all: Vec<_> = (0..5).map(|k| w.window(11, k)).collect();
        let expected: Vec<_> = [(2, 12), (4, 14), (6, 16), (8, 18), (10, 20)]
            .into_iter()
            .map(|(s, e)| Window::new(s, e))
            .collect();
        assert_eq!(all, expected);
        for w in all {
            assert!(w.contains(freshet_types::EventTime(11)));
        }
    }

    #[test]
    fn hop_size_must_be_a_multiple_of_slide() {
        assert!(
            WindowKind::Hop {
                slide_ms: 3,
                size_ms: 10
            }
            .validate()
            .is_err()
        );
    }
}
