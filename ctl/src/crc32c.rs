//! CRC-32C (Castagnoli), the hash etcd's `snapshot status` reports.

const POLY: u32 = 0x82F6_3B78;

fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *slot = c;
    }
    t
}

/// An incremental CRC-32C.
pub struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Crc32c {
    pub fn new() -> Crc32c {
        Crc32c {
            table: table(),
            crc: !0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.crc = self.table[((self.crc ^ u32::from(*b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn finish(&self) -> u32 {
        !self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        let mut c = Crc32c::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xE306_9283);
    }
}
