//! The seeded generator the kernel tests and benches share (splitmix64): small, fast and the
//! same sequence everywhere, so a failing case can be replayed from its seed.
//! (`tests/kernels_llamacpp.rs` derives its fixtures' inputs from it: changing the sequence
//! means regenerating those fixtures.)

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// A random byte, half of the time one of the extremes (as i8: -128, -127, -1, 0, 127;
    /// as nibbles: 0 and 15), where a too-narrow intermediate sum would overflow.
    pub fn edgy_byte(&mut self) -> u8 {
        let r = self.next_u64();
        if r & 1 == 0 {
            (r >> 8) as u8
        } else {
            [0x80, 0x81, 0xFF, 0x00, 0x7F, 0xF0, 0x0F, 0x88][(r >> 8) as usize % 8]
        }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-1, 1)`.
    pub fn f32(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }

    /// Random finite scale: magnitude log-uniform in `[2^lo, 2^hi]`, random sign.
    pub fn scale_in(&mut self, lo: f32, hi: f32) -> f32 {
        let mag = (2.0f32).powf(lo + (hi - lo) * self.unit());
        if self.byte() & 1 == 0 { mag } else { -mag }
    }
}
