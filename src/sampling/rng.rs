//! The random number generator behind every seeded draw: xoshiro256** seeded with splitmix64.
//!
//! Both are Sebastiano Vigna's public-domain reference algorithms
//! (<https://prng.di.unimi.it/>): the 256-bit state is filled with four consecutive
//! splitmix64 outputs of the 64-bit seed, and uniform doubles take the top 53 bits of an
//! output (`(x >> 11) * 2^-53`, in [0, 1)). Integer arithmetic only, so a seed gives the same
//! stream on every platform and compiler.

/// One step of splitmix64: advances `state` and returns the next output.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256**: 256 bits of state, period 2^256 - 1, passes BigCrush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    /// Seeds the state with four splitmix64 outputs of `seed` (never the all-zero state).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// A generator with exactly this state (for test vectors). The all-zero state is a
    /// fixed point of the generator; it is replaced by `seed_from_u64(0)`.
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] {
            return Self::seed_from_u64(0);
        }
        Self { s }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform double in [0, 1) with 53 random bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed for callers that did not choose one: the time and a per-process random hash key
/// mixed through splitmix64. Not reproducible, by design.
pub fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    h.write_u64(nanos);
    let mut s = h.finish();
    splitmix64(&mut s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_vector() {
        // Published first outputs of splitmix64 for seed 0.
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut s), 0x06c4_5d18_8009_454f);
        assert_eq!(splitmix64(&mut s), 0xf88b_b8a8_724c_81ec);
    }

    #[test]
    fn xoshiro_reference_vectors() {
        // From Vigna's C reference (xoshiro256starstar.c) compiled with gcc.
        let mut r = Xoshiro256StarStar::from_state([1, 2, 3, 4]);
        let want = [
            0x0000_0000_0000_2d00,
            0x0000_0000_0000_0000,
            0x0000_0000_5a00_7080,
            0x10e0_0000_0000_9d80,
            0x10e0_b61c_e100_9d80,
            0x0870_021c_e143_ad00,
        ];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
        let mut r = Xoshiro256StarStar::seed_from_u64(42);
        for w in [
            0x1578_0b2e_0c2e_c716u64,
            0x6104_d986_6d11_3a7e,
            0xae17_5332_39e4_99a1,
            0xecb8_ad47_03b3_60a1,
        ] {
            assert_eq!(r.next_u64(), w);
        }
        let mut r = Xoshiro256StarStar::seed_from_u64(0);
        assert_eq!(r.next_u64(), 0x99ec_5f36_cb75_f2b4);
    }

    #[test]
    fn next_f64_in_unit_interval() {
        let mut r = Xoshiro256StarStar::seed_from_u64(7);
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
