//! A small PNG encoder: 8-bit RGB, no interlacing, filter type 0, and a
//! zlib stream compressed with fixed-Huffman deflate over a greedy LZ77
//! match finder (plots are mostly flat colour, so this is usually 50-100x
//! smaller than stored blocks).

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320) as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0xFFFF_FFFF, bytes) ^ 0xFFFF_FFFF
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[n] = c;
            n += 1;
        }
        t
    };
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// Adler-32 checksum as the zlib trailer uses it.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Writes bits least-significant first, as deflate packs them.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= (value as u64) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which deflate stores most-significant bit first.
    fn put_code(&mut self, code: u32, bits: u32) {
        let rev = code.reverse_bits() >> (32 - bits);
        self.put(rev, bits);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Fixed-Huffman literal/length code of `sym` (0..=287).
fn put_litlen(w: &mut BitWriter, sym: u32) {
    match sym {
        0..=143 => w.put_code(0x30 + sym, 8),
        144..=255 => w.put_code(0x190 + sym - 144, 9),
        256..=279 => w.put_code(sym - 256, 7),
        _ => w.put_code(0xC0 + sym - 280, 8),
    }
}

fn put_match(w: &mut BitWriter, len: usize, dist: usize) {
    let li = LEN_BASE
        .iter()
        .rposition(|&b| b as usize <= len)
        .unwrap_or(0);
    put_litlen(w, 257 + li as u32);
    if LEN_EXTRA[li] > 0 {
        w.put((len - LEN_BASE[li] as usize) as u32, LEN_EXTRA[li] as u32);
    }
    let di = DIST_BASE
        .iter()
        .rposition(|&b| b as usize <= dist)
        .unwrap_or(0);
    w.put_code(di as u32, 5);
    if DIST_EXTRA[di] > 0 {
        w.put(
            (dist - DIST_BASE[di] as usize) as u32,
            DIST_EXTRA[di] as u32,
        );
    }
}

/// Raw deflate (RFC 1951) of `data`: one fixed-Huffman block, greedy LZ77
/// with a hash chain over a 32 KiB window.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    const WINDOW: usize = 32768;
    const HASH_BITS: u32 = 15;
    const MAX_CHAIN: usize = 32;
    const NONE: usize = usize::MAX;
    let mut w = BitWriter {
        out: Vec::with_capacity(data.len() / 16 + 64),
        acc: 0,
        n: 0,
    };
    w.put(1, 1); // BFINAL
    w.put(1, 2); // BTYPE = 01, fixed Huffman
    let hash = |i: usize| -> usize {
        let v = (data[i] as u32) | (data[i + 1] as u32) << 8 | (data[i + 2] as u32) << 16;
        (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
    };
    let mut head = vec![NONE; 1 << HASH_BITS];
    let mut prev = vec![NONE; data.len()];
    let insert = |i: usize, head: &mut [usize], prev: &mut [usize]| {
        if i + 2 < data.len() {
            let h = hash(i);
            prev[i] = head[h];
            head[h] = i;
        }
    };
    let mut i = 0;
    while i < data.len() {
        let (mut best_len, mut best_dist) = (0usize, 0usize);
        if i + 2 < data.len() {
            let max_len = (data.len() - i).min(258);
            let mut cand = head[hash(i)];
            let mut steps = 0;
            while cand != NONE && i - cand <= WINDOW && steps < MAX_CHAIN {
                let mut l = 0;
                while l < max_len && data[cand + l] == data[i + l] {
                    l += 1;
                }
                if l > best_len {
                    best_len = l;
                    best_dist = i - cand;
                    if l == max_len {
                        break;
                    }
                }
                cand = prev[cand];
                steps += 1;
            }
        }
        if best_len >= 3 {
            put_match(&mut w, best_len, best_dist);
            for k in i..i + best_len {
                insert(k, &mut head, &mut prev);
            }
            i += best_len;
        } else {
            put_litlen(&mut w, data[i] as u32);
            insert(i, &mut head, &mut prev);
            i += 1;
        }
    }
    put_litlen(&mut w, 256);
    w.finish()
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32_update(crc32_update(0xFFFF_FFFF, kind), data) ^ 0xFFFF_FFFF;
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The PNG file of an 8-bit RGB image, `rgb` holding `width * height * 3`
/// bytes row by row (missing bytes read as black, extra ones are ignored).
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut raw = Vec::with_capacity((stride + 1) * height as usize);
    for y in 0..height as usize {
        raw.push(0); // filter type 0: none
        let start = (y * stride).min(rgb.len());
        let end = (start + stride).min(rgb.len());
        raw.extend_from_slice(&rgb[start..end]);
        raw.resize(raw.len() + stride - (end - start), 0);
    }
    let mut z = vec![0x78, 0x01]; // deflate, 32 KiB window, check bits
    z.extend_from_slice(&deflate(&raw));
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads deflate bits least-significant first.
    struct BitReader<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl BitReader<'_> {
        fn bit(&mut self) -> u32 {
            let b = (self.data[self.pos / 8] >> (self.pos % 8)) & 1;
            self.pos += 1;
            b as u32
        }
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, k| acc | self.bit() << k)
        }
        /// Reads a fixed-Huffman literal/length symbol.
        fn litlen(&mut self) -> u32 {
            let mut code = 0;
            for len in 1..=9 {
                code = code << 1 | self.bit();
                match len {
                    7 if code <= 0x17 => return code + 256,
                    8 if (0x30..=0xBF).contains(&code) => return code - 0x30,
                    8 if (0xC0..=0xC7).contains(&code) => return code - 0xC0 + 280,
                    9 if code >= 0x190 => return code - 0x190 + 144,
                    _ => {}
                }
            }
            panic!("bad fixed Huffman code");
        }
    }

    /// A minimal inflate: stored and fixed-Huffman blocks.
    pub(crate) fn inflate(data: &[u8]) -> Vec<u8> {
        let mut r = BitReader { data, pos: 0 };
        let mut out: Vec<u8> = Vec::new();
        loop {
            let last = r.bit();
            match r.bits(2) {
                0 => {
                    r.pos = r.pos.div_ceil(8) * 8;
                    let len = r.bits(16) as usize;
                    let nlen = r.bits(16) as usize;
                    assert_eq!(len, !nlen & 0xFFFF);
                    let p = r.pos / 8;
                    out.extend_from_slice(&data[p..p + len]);
                    r.pos += len * 8;
                }
                1 => loop {
                    let sym = r.litlen();
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let li = (sym - 257) as usize;
                        let len = LEN_BASE[li] as usize + r.bits(LEN_EXTRA[li] as u32) as usize;
                        let di = (0..5).fold(0, |acc, _| acc << 1 | r.bit()) as usize;
                        let dist = DIST_BASE[di] as usize + r.bits(DIST_EXTRA[di] as u32) as usize;
                        assert!(dist <= out.len());
                        for _ in 0..len {
                            out.push(out[out.len() - dist]);
                        }
                    }
                },
                t => panic!("unsupported block type {t}"),
            }
            if last == 1 {
                return out;
            }
        }
    }

    /// Decodes a PNG written by [`encode_rgb`], checking the signature,
    /// every chunk CRC and the zlib Adler-32: (width, height, rgb).
    pub(crate) fn decode_rgb(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "signature");
        let mut p = 8;
        let (mut w, mut h) = (0, 0);
        let mut idat = Vec::new();
        let mut kinds = Vec::new();
        while p < png.len() {
            let len = u32::from_be_bytes(png[p..p + 4].try_into().unwrap()) as usize;
            let kind = &png[p + 4..p + 8];
            let body = &png[p + 8..p + 8 + len];
            let crc = u32::from_be_bytes(png[p + 8 + len..p + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&png[p + 4..p + 8 + len]), "chunk CRC");
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(body[0..4].try_into().unwrap());
                    h = u32::from_be_bytes(body[4..8].try_into().unwrap());
                    assert_eq!(&body[8..], &[8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(body),
                _ => {}
            }
            kinds.push(kind.to_vec());
            p += 12 + len;
        }
        assert_eq!(kinds.first().map(|k| &k[..]), Some(&b"IHDR"[..]));
        assert_eq!(kinds.last().map(|k| &k[..]), Some(&b"IEND"[..]));
        assert_eq!(
            (idat[0] as u32 * 256 + idat[1] as u32) % 31,
            0,
            "zlib FCHECK"
        );
        let raw = inflate(&idat[2..idat.len() - 4]);
        let adler = u32::from_be_bytes(idat[idat.len() - 4..].try_into().unwrap());
        assert_eq!(adler, adler32(&raw), "Adler-32");
        let stride = w as usize * 3;
        assert_eq!(raw.len(), (stride + 1) * h as usize);
        let mut rgb = Vec::with_capacity(stride * h as usize);
        for row in raw.chunks(stride + 1) {
            assert_eq!(row[0], 0, "filter type");
            rgb.extend_from_slice(&row[1..]);
        }
        (w, h, rgb)
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn deflate_round_trips() {
        let mut seed = 12345u64;
        let mut noisy = Vec::new();
        for _ in 0..70_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            noisy.push((seed >> 60) as u8);
        }
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![7],
            vec![0; 100_000],
            b"abcabcabcabcabxabcabc".to_vec(),
            (0..=255u8).cycle().take(50_000).collect(),
            noisy,
        ];
        for data in cases {
            assert_eq!(inflate(&deflate(&data)), data);
        }
    }

    #[test]
    fn png_round_trips() {
        for (w, h) in [(1, 1), (3, 2), (257, 131), (0, 0)] {
            let rgb: Vec<u8> = (0..w * h * 3)
                .map(|i| ((i * 7 + i / 5) % 251) as u8)
                .collect();
            let png = encode_rgb(w, h, &rgb);
            let (dw, dh, back) = decode_rgb(&png);
            assert_eq!((dw, dh), (w, h));
            assert_eq!(back, rgb);
        }
    }
}
