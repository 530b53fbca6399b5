//! PNG files of the canvas through the `png` crate (8-bit RGB, default
//! compression): the same pixels always give the same bytes.

/// The PNG file of an 8-bit RGB image, `rgb` holding `width * height * 3`
/// bytes row by row (missing bytes read as black, extra ones are ignored).
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> std::io::Result<Vec<u8>> {
    let n = width as usize * height as usize * 3;
    let mut data = rgb[..rgb.len().min(n)].to_vec();
    data.resize(n, 0);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let io = |e: png::EncodingError| std::io::Error::other(e.to_string());
    let mut w = enc.write_header().map_err(io)?;
    w.write_image_data(&data).map_err(io)?;
    w.finish().map_err(io)?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a PNG (with the `png` crate, which checks every chunk's CRC
    /// and the zlib checksum): (width, height, rgb).
    pub(crate) fn decode_rgb(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().expect("a PNG");
        let mut buf = vec![0; r.output_buffer_size().expect("a size")];
        let info = r.next_frame(&mut buf).expect("one frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_round_trips() {
        for (w, h) in [(1, 1), (3, 2), (257, 131)] {
            let rgb: Vec<u8> = (0..w * h * 3)
                .map(|i| ((i * 7 + i / 5) % 251) as u8)
                .collect();
            let png = encode_rgb(w, h, &rgb).unwrap();
            let (dw, dh, back) = decode_rgb(&png);
            assert_eq!((dw, dh), (w, h));
            assert_eq!(back, rgb);
        }
        // Short input reads as black; a zero-sized image is an error, not
        // a panic.
        let (_, _, back) = decode_rgb(&encode_rgb(2, 1, &[255]).unwrap());
        assert_eq!(back, [255, 0, 0, 0, 0, 0]);
        assert!(encode_rgb(0, 0, &[]).is_err());
    }
}
