//! Counter-based randomness: every draw is a pure function of (seed, event id, draw index).
//!
//! There is no generator state carried from one event to the next, so any event can be
//! generated on its own, by any split, in any order, and come out bit-for-bit the same. The
//! mixing function is SplitMix64's finaliser; an event's draws are the SplitMix64 sequence
//! started from a key derived from the seed and the event id.
//!
//! Draws are mapped to ranges by multiply-shift (no rejection), which is deterministic and
//! whose bias (below 2^-32 for the ranges used here) is irrelevant to a benchmark workload.

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives the key of one independent family of streams (events, channel URLs) from the
/// user's seed. `domain` separates the families.
pub(crate) fn domain_key(seed: u64, domain: u64) -> u64 {
    mix64(mix64(seed ^ GAMMA).wrapping_add(domain.wrapping_mul(GAMMA)))
}

/// The draws of one item (an event, or a channel's URL), indexed from 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draws {
    key: u64,
}

impl Draws {
    /// The draws of item `id` in the family keyed by `domain_key`. Distinct ids give
    /// distinct keys (every step is a bijection of `id`).
    #[inline]
    pub(crate) fn new(domain_key: u64, id: u64) -> Draws {
        Draws {
            key: mix64(domain_key ^ id.wrapping_mul(GAMMA)),
        }
    }

    /// Draw number `index`: 64 uniformly distributed bits.
    #[inline]
    pub(crate) fn draw(self, index: u64) -> u64 {
        mix64(
            self.key
                .wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)),
        )
    }
}

/// Maps 64 random bits to `0..bound` (`bound > 0`).
#[inline]
pub(crate) fn below(bits: u64, bound: u64) -> u64 {
    ((u128::from(bits) * u128::from(bound)) >> 64) as u64
}

/// Maps 32 random bits to `0..bound` (`bound > 0`).
#[inline]
pub(crate) fn below32(bits: u32, bound: u32) -> u32 {
    ((u64::from(bits) * u64::from(bound)) >> 32) as u32
}

/// Maps 16 random bits to `0..bound` (`bound > 0`).
#[inline]
pub(crate) fn below16(bits: u16, bound: u16) -> u16 {
    ((u32::from(bits) * u32::from(bound)) >> 16) as u16
}

/// Maps 64 random bits to a double uniform in `[0, 1)` (53 bits of precision).
#[inline]
pub(crate) fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `6 * log2(10)`: `10^(6u) = 2^(u * SIX_LOG2_10)`.
const SIX_LOG2_10: f64 = 19.931568569324174;

/// `2^(j/32)` for `j` in `0..32`, correctly rounded.
const EXP2_THIRTY_SECONDS: [f64; 32] = [
    f64::from_bits(0x3FF0000000000000),
    f64::from_bits(0x3FF059B0D3158574),
    f64::from_bits(0x3FF0B5586CF9890F),
    f64::from_bits(0x3FF11301D0125B51),
    f64::from_bits(0x3FF172B83C7D517B),
    f64::from_bits(0x3FF1D4873168B9AA),
    f64::from_bits(0x3FF2387A6E756238),
    f64::from_bits(0x3FF29E9DF51FDEE1),
    f64::from_bits(0x3FF306FE0A31B715),
    f64::from_bits(0x3FF371A7373AA9CB),
    f64::from_bits(0x3FF3DEA64C123422),
    f64::from_bits(0x3FF44E086061892D),
    f64::from_bits(0x3FF4BFDAD5362A27),
    f64::from_bits(0x3FF5342B569D4F82),
    f64::from_bits(0x3FF5AB07DD485429),
    f64::from_bits(0x3FF6247EB03A5585),
    f64::from_bits(0x3FF6A09E667F3BCD),
    f64::from_bits(0x3FF71F75E8EC5F74),
    f64::from_bits(0x3FF7A11473EB0187),
    f64::from_bits(0x3FF82589994CCE13),
    f64::from_bits(0x3FF8ACE5422AA0DB),
    f64::from_bits(0x3FF93737B0CDC5E5),
    f64::from_bits(0x3FF9C49182A3F090),
    f64::from_bits(0x3FFA5503B23E255D),
    f64::from_bits(0x3FFAE89F995AD3AD),
    f64::from_bits(0x3FFB7F76F2FB5E47),
    f64::from_bits(0x3FFC199BDD85529C),
    f64::from_bits(0x3FFCB720DCEF9069),
    f64::from_bits(0x3FFD5818DCFBA487),
    f64::from_bits(0x3FFDFC97337B9B5F),
    f64::from_bits(0x3FFEA4AFA2A490DA),
    f64::from_bits(0x3FFF50765B6E4540),
];

/// Taylor coefficients of `2^r = e^(r ln 2)`: `(ln 2)^k / k!` for `k` in `0..8`.
const EXP2_TAYLOR: [f64; 8] = [
    1.0,
    std::f64::consts::LN_2,
    0.24022650695910072,
    0.05550410866482158,
    0.009618129107628477,
    0.0013333558146428443,
    0.0001540353039338161,
    1.5252733804059841e-05,
];

/// `10^(6u)` for `u` in `[0, 1)`, to within a couple of ulps.
///
/// Written out (a table of `2^(j/32)` and a degree-7 polynomial on `[0, 1/32)`, whose
/// truncation error is below 2^-59) rather than calling `powf`, for two reasons: it is
/// several times faster than the C library's `pow`, and it uses only IEEE additions and
/// multiplications, so prices are the same on every platform and C library.
#[inline]
pub(crate) fn pow10_6u(u: f64) -> f64 {
    debug_assert!((0.0..1.0).contains(&u));
    let scaled = u * SIX_LOG2_10 * 32.0; // in [0, 638)
    let m = scaled as u32; // floor, as scaled >= 0
    let r = (scaled - f64::from(m)) * (1.0 / 32.0); // in [0, 1/32)
    // Estrin's scheme: the same polynomial as Horner's, with a third of the dependency
    // chain (this sits on every bid's critical path).
    let c = EXP2_TAYLOR;
    let r2 = r * r;
    let r4 = r2 * r2;
    let low = (c[0] + c[1] * r) + r2 * (c[2] + c[3] * r);
    let high = (c[4] + c[5] * r) + r2 * (c[6] + c[7] * r);
    let poly = low + r4 * high;
    let whole = f64::from_bits(u64::from(1023 + (m >> 5)) << 52); // 2^floor(x), exactly
    whole * EXP2_THIRTY_SECONDS[(m & 31) as usize] * poly
}

/// A cheap stream of 64-bit words grown from one draw (xorshift64), for bulk filler text.
///
/// The `extra` padding is most of the bytes generated; one multiply-free step per 8
/// letters keeps it cheap, where a full draw per word would cost two 64-bit multiplies
/// (which baseline x86-64 cannot vectorise). The words are as much a pure function of
/// the event as its draws are; they are merely less independent of each other, which
/// padding text does not need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filler(u64);

impl Filler {
    /// The stream seeded by `bits` (a draw).
    #[inline]
    pub(crate) fn new(bits: u64) -> Filler {
        // xorshift's one fixed point is 0.
        Filler(bits | 1)
    }

    /// The next 64 bits.
    #[inline]
    pub(crate) fn next_word(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Turns 64 random bits into 8 lowercase ASCII letters (little-endian byte order), each
/// byte `b` becoming `'a' + floor(b * 26 / 256)`.
///
/// The multiply happens in 16-bit lanes (`255 * 26 < 2^16`, so no lane carries into the
/// next), which makes this a handful of instructions for 8 letters: the `extra` padding is
/// most of the bytes the generator produces.
#[inline]
pub(crate) fn letters8(bits: u64) -> [u8; 8] {
    const LANES: u64 = 0x00FF_00FF_00FF_00FF;
    let even = (((bits & LANES) * 26) >> 8) & LANES;
    let odd = ((((bits >> 8) & LANES) * 26) >> 8) & LANES;
    (even | (odd << 8))
        .wrapping_add(0x6161_6161_6161_6161)
        .to_le_bytes()
}

/// A byte-to-character table for "words": a byte below 20 (probability 20/256, about
/// Beam's 1/13) becomes `special`, any other byte a lowercase letter.
pub(crate) const fn word_table(special: u8) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = if b < 20 {
            special
        } else {
            b'a' + ((b - 20) * 26 / 236) as u8
        };
        b += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters8_are_lowercase_and_cover_the_alphabet() {
        let mut seen = [false; 26];
        for i in 0..10_000u64 {
            for c in letters8(mix64(i)) {
                assert!(c.is_ascii_lowercase(), "{c}");
                seen[usize::from(c - b'a')] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(letters8(0), *b"aaaaaaaa");
        assert_eq!(letters8(u64::MAX), *b"zzzzzzzz");
    }

    #[test]
    fn word_table_has_all_letters_and_the_special() {
        let table = word_table(b'_');
        assert_eq!(table.iter().filter(|&&c| c == b'_').count(), 20);
        for c in b'a'..=b'z' {
            assert!(table.contains(&c), "{}", c as char);
        }
    }

    #[test]
    fn below_stays_in_range_and_hits_both_ends() {
        let (mut lo, mut hi) = (false, false);
        for i in 0..10_000u64 {
            let v = below(mix64(i), 7);
            assert!(v < 7);
            lo |= v == 0;
            hi |= v == 6;
        }
        assert!(lo && hi);
        assert!(below32(u32::MAX, 10) == 9 && below16(u16::MAX, 6) == 5);
        assert!(unit_f64(u64::MAX) < 1.0 && unit_f64(0) == 0.0);
    }

    #[test]
    fn pow10_6u_matches_powf() {
        let mut worst = 0.0f64;
        for i in 0..200_000u64 {
            let u = unit_f64(mix64(i));
            let expected = 10f64.powf(6.0 * u);
            worst = worst.max(((pow10_6u(u) - expected) / expected).abs());
        }
        for u in [0.0, 1.0 / 6.0, 0.5, 1.0 - f64::EPSILON] {
            let expected = 10f64.powf(6.0 * u);
            worst = worst.max(((pow10_6u(u) - expected) / expected).abs());
        }
        assert!(worst < 1e-14, "{worst:e}");
        assert_eq!(pow10_6u(0.0), 1.0);
    }

    #[test]
    fn draws_depend_on_key_id_and_index() {
        let a = Draws::new(domain_key(0, 0), 5);
        let b = Draws::new(domain_key(1, 0), 5);
        let c = Draws::new(domain_key(0, 0), 6);
        let d = Draws::new(domain_key(0, 1), 5);
        assert_ne!(a.draw(0), b.draw(0));
        assert_ne!(a.draw(0), c.draw(0));
        assert_ne!(a.draw(0), d.draw(0));
        assert_ne!(a.draw(0), a.draw(1));
        assert_eq!(a.draw(3), Draws::new(domain_key(0, 0), 5).draw(3));
    }
}
