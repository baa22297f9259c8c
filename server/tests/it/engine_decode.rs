//! Every decode path of untrusted image bytes: handled correctly or a typed error, never a panic, never
//! unbounded memory. Fixtures are generated here (the `image` crate, or hand-built PNG / JPEG bytes).

use image::{ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use std::io::Cursor;
use vigil::engine::image_io::{decode_mask, decode_rgb, dimensions, ImageError};

fn encode<P, C>(img: &ImageBuffer<P, C>, format: ImageFormat) -> Vec<u8>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), format).unwrap();
    buf
}

fn gradient(w: u32, h: u32) -> image::RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128]))
}

// --- A minimal PNG writer (stored deflate blocks) for what the image crate does not write.

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65535).collect() };
    for (i, b) in blocks.iter().enumerate() {
        out.push((i + 1 == blocks.len()) as u8);
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        out.extend_from_slice(b);
    }
    let (mut a, mut bsum) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        bsum = (bsum + a) % 65521;
    }
    out.extend_from_slice(&((bsum << 16) | a).to_be_bytes());
    out
}

fn png(width: u32, height: u32, bit_depth: u8, color_type: u8, palette: Option<&[u8]>, raw: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(p) = palette {
        chunk(&mut out, b"PLTE", p);
    }
    chunk(&mut out, b"IDAT", &zlib_stored(raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A 64×64 CMYK baseline JPEG (Adobe APP14, no colour transform), every sample mid-level: hand-built with
/// one-symbol Huffman tables so that each block is two bits.
fn cmyk_jpeg() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    // APP14 Adobe, transform 0 (CMYK).
    j.extend_from_slice(&[0xFF, 0xEE, 0x00, 0x0E]);
    j.extend_from_slice(b"Adobe");
    j.extend_from_slice(&[0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);
    // DQT: all ones.
    j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    j.extend_from_slice(&[1u8; 64]);
    // SOF0: 8-bit, 64×64, 4 components 1×1 sampling, table 0.
    j.extend_from_slice(&[0xFF, 0xC0, 0x00, 20, 8, 0, 64, 0, 64, 4]);
    for id in 1..=4u8 {
        j.extend_from_slice(&[id, 0x11, 0]);
    }
    // DHT: DC table 0 and AC table 0, each with the single 1-bit code "0" for symbol 0.
    j.extend_from_slice(&[0xFF, 0xC4, 0x00, 38]);
    for class in [0x00u8, 0x10] {
        j.push(class);
        let mut counts = [0u8; 16];
        counts[0] = 1;
        j.extend_from_slice(&counts);
        j.push(0);
    }
    // SOS.
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 14, 4]);
    for id in 1..=4u8 {
        j.extend_from_slice(&[id, 0x00]);
    }
    j.extend_from_slice(&[0, 63, 0]);
    // 64 MCUs × 4 blocks × 2 bits ("0" DC diff 0, "0" end of block) = 64 zero bytes.
    j.extend_from_slice(&[0u8; 64]);
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

/// Inserts an EXIF APP1 segment with the given orientation right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2A\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn jpeg_and_png_rgb() {
    let img = gradient(100, 80);
    let j = decode_rgb(&encode(&img, ImageFormat::Jpeg)).unwrap();
    assert_eq!(j.dimensions(), (100, 80));
    let p = decode_rgb(&encode(&img, ImageFormat::Png)).unwrap();
    assert_eq!(p, img, "PNG is lossless");
}

#[test]
fn png_16_bit_gray_and_rgba() {
    let img16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(70, 70, |x, _| Rgb([x as u16 * 900, 0, 65535]));
    let d = decode_rgb(&encode(&img16, ImageFormat::Png)).unwrap();
    assert_eq!(d.get_pixel(0, 0).0, [0, 0, 255]);
    let gray: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(64, 64, |x, _| Luma([x as u8 * 4]));
    let d = decode_rgb(&encode(&gray, ImageFormat::Png)).unwrap();
    assert_eq!(d.get_pixel(10, 3).0, [40, 40, 40]);
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(64, 64, |_, _| Luma([65535]));
    assert_eq!(decode_rgb(&encode(&gray16, ImageFormat::Png)).unwrap().get_pixel(0, 0).0, [255, 255, 255]);
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(64, 64, |_, _| Rgba([10, 20, 30, 0]));
    assert_eq!(decode_rgb(&encode(&rgba, ImageFormat::Png)).unwrap().get_pixel(5, 5).0, [10, 20, 30]);
    // Grayscale JPEG.
    let d = decode_rgb(&encode(&gray, ImageFormat::Jpeg)).unwrap();
    assert_eq!(d.dimensions(), (64, 64));
}

#[test]
fn palette_png() {
    // 64×64, 8-bit indices alternating between red and blue per row.
    let palette = [255u8, 0, 0, 0, 0, 255];
    let mut raw = Vec::new();
    for y in 0..64u32 {
        raw.push(0); // filter: none
        raw.extend(std::iter::repeat((y % 2) as u8).take(64));
    }
    let bytes = png(64, 64, 8, 3, Some(&palette), &raw);
    let d = decode_rgb(&bytes).unwrap();
    assert_eq!(d.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(d.get_pixel(0, 1).0, [0, 0, 255]);
    // Masks may be palette PNGs too (most LFV cookie masks are).
    assert_eq!(decode_mask(&bytes).unwrap().get_pixel(3, 1).0, [0, 0, 255, 255]);
}

#[test]
fn cmyk_jpeg_is_decoded_or_refused_cleanly() {
    match decode_rgb(&cmyk_jpeg()) {
        Ok(img) => assert_eq!(img.dimensions(), (64, 64)),
        Err(e) => assert!(matches!(e, ImageError::Corrupt(_) | ImageError::UnsupportedFormat), "{e:?}"),
    }
}

#[test]
fn exif_orientation_is_applied() {
    let img = gradient(64, 128);
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let rotated = with_exif_orientation(&jpeg, 6); // rotate 90° clockwise to display
    let d = decode_rgb(&rotated).unwrap();
    assert_eq!(d.dimensions(), (128, 64), "EXIF orientation 6 swaps the sides");
    assert_eq!(dimensions(&rotated).unwrap(), (128, 64));
    assert_eq!(decode_rgb(&with_exif_orientation(&jpeg, 1)).unwrap().dimensions(), (64, 128));
}

#[test]
fn truncated_empty_and_foreign_bytes() {
    let jpeg = encode(&gradient(128, 128), ImageFormat::Jpeg);
    for cut in [jpeg.len() / 2, 200, 20, 3] {
        match decode_rgb(&jpeg[..cut]) {
            Ok(img) => assert_eq!(img.dimensions(), (128, 128)),
            Err(e) => assert!(matches!(e, ImageError::Corrupt(_) | ImageError::UnsupportedFormat), "{e:?}"),
        }
    }
    let pngb = encode(&gradient(128, 128), ImageFormat::Png);
    assert!(matches!(decode_rgb(&pngb[..pngb.len() / 2]), Err(ImageError::Corrupt(_))));
    assert_eq!(decode_rgb(&[]), Err(ImageError::Empty));
    assert_eq!(decode_rgb(b"this is plain text, not an image"), Err(ImageError::UnsupportedFormat));
    assert_eq!(decode_rgb(b"GIF89a\x40\x00\x40\x00"), Err(ImageError::UnsupportedFormat));
    assert_eq!(decode_mask(&[]), Err(ImageError::Empty));
    assert!(decode_mask(b"nope").is_err());
}

#[test]
fn sides_outside_64_to_4096_are_refused() {
    let small = encode(&gradient(63, 100), ImageFormat::Png);
    assert_eq!(decode_rgb(&small), Err(ImageError::BadDimensions { width: 63, height: 100 }));
    let big = encode(&gradient(4097, 64), ImageFormat::Png);
    assert_eq!(decode_rgb(&big), Err(ImageError::BadDimensions { width: 4097, height: 64 }));
    let big_jpeg = encode(&gradient(64, 4100), ImageFormat::Jpeg);
    assert!(matches!(decode_rgb(&big_jpeg), Err(ImageError::BadDimensions { .. })));
    // Exactly at the limits is fine.
    assert!(decode_rgb(&encode(&gradient(64, 64), ImageFormat::Png)).is_ok());
    // A tiny mask (LFV's dummy mask is 16×16) is fine as a mask.
    assert!(decode_mask(&encode(&gradient(16, 16), ImageFormat::Png)).is_ok());
}

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    // A few hundred bytes declaring 100000 × 100000 RGB (30 GB decoded).
    let bomb = png(100_000, 100_000, 8, 2, None, &[0u8; 64]);
    assert!(bomb.len() < 1000);
    let t = std::time::Instant::now();
    assert!(matches!(decode_rgb(&bomb), Err(ImageError::BadDimensions { .. })));
    assert!(decode_mask(&bomb).is_err());
    assert!(t.elapsed().as_secs() < 5, "refused before decoding");
    // A legal 4096-px-wide image decodes within the limits.
    let zeros = vec![0u8; (4096 * 3 + 1) * 128];
    let legal = png(4096, 128, 8, 2, None, &zeros);
    assert_eq!(decode_rgb(&legal).unwrap().dimensions(), (4096, 128));
}
