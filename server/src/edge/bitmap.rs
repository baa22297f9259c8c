//! The agent's images: LFV's packed RGB888 bitmaps, inline in the request or in a POSIX shared memory segment,
//! and the anomaly mask written back the same two ways.
//!
//! A shared memory segment is the file `/dev/shm/NAME` that `shm_open("/NAME")` opens on Linux (Python's
//! `multiprocessing.shared_memory`, Boost.Interprocess and C clients all create it there). The name is checked
//! before anything is opened: one path component, no `..`, so a request cannot name another file.

use super::proto::{bitmap, Bitmap, SharedMemoryHandle};
use image::RgbImage;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use tonic::Status;

/// LFV's bounds on a bitmap's sides.
pub const MIN_SIDE: i32 = 64;
pub const MAX_SIDE: i32 = 4096;

/// Where POSIX shared memory segments live on Linux.
const SHM_DIR: &str = "/dev/shm";

/// The bytes a `width × height` RGB888 bitmap takes, after checking the sides.
pub fn byte_count(width: i32, height: i32) -> Result<usize, Status> {
    for (what, v) in [("width", width), ("height", height)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
            return Err(Status::invalid_argument(format!(
                "The bitmap's {what} is {v}; it must be from {MIN_SIDE} to {MAX_SIDE} pixels."
            )));
        }
    }
    Ok(width as usize * height as usize * 3)
}

/// The path of a shared memory segment, or why its name is refused.
fn segment_path(name: &str) -> Result<PathBuf, Status> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 255
        && bare != "."
        && bare != ".."
        && !bare.bytes().any(|b| b == b'/' || b == 0 || b.is_ascii_control());
    if !ok {
        return Err(Status::invalid_argument(format!("{name:?} is not a POSIX shared memory segment name.")));
    }
    Ok(PathBuf::from(SHM_DIR).join(bare))
}

/// Opens a segment and checks that `offset + size` lies inside it.
fn open_segment(h: &SharedMemoryHandle, need: usize, write: bool) -> Result<std::fs::File, Status> {
    let path = segment_path(&h.name)?;
    let file = std::fs::OpenOptions::new().read(true).write(write).open(&path).map_err(|e| {
        Status::invalid_argument(format!("The shared memory segment {:?} cannot be opened: {e}.", h.name))
    })?;
    let meta = file.metadata().map_err(|e| Status::internal(e.to_string()))?;
    if !meta.is_file() {
        return Err(Status::invalid_argument(format!("{:?} is not a shared memory segment.", h.name)));
    }
    if (h.size as u128) < need as u128 {
        return Err(Status::invalid_argument(format!(
            "The shared memory handle's size is {} bytes; the bitmap needs {need}.",
            h.size
        )));
    }
    if h.offset as u128 + need as u128 > meta.len() as u128 {
        return Err(Status::invalid_argument(format!(
            "The shared memory segment {:?} holds {} bytes; offset {} + {need} bytes lies beyond it.",
            h.name,
            meta.len(),
            h.offset
        )));
    }
    Ok(file)
}

/// The request's image, read and checked: sides, byte count, shared memory bounds. Inline bytes are taken over,
/// not copied. Blocking (a segment is read with `pread`): call it on a blocking thread.
pub fn read(b: Option<Bitmap>) -> Result<RgbImage, Status> {
    let b = b.ok_or_else(|| Status::invalid_argument("The request has no bitmap."))?;
    let need = byte_count(b.width, b.height)?;
    let bytes = match b.data {
        Some(bitmap::Data::ByteData(bytes)) => {
            if bytes.len() != need {
                return Err(Status::invalid_argument(format!(
                    "The bitmap has {} bytes; {}×{} RGB888 takes {need}.",
                    bytes.len(),
                    b.width,
                    b.height
                )));
            }
            bytes
        }
        Some(bitmap::Data::SharedMemoryHandle(h)) => {
            if h.size as usize != need {
                return Err(Status::invalid_argument(format!(
                    "The shared memory handle's size is {} bytes; {}×{} RGB888 takes {need}.",
                    h.size, b.width, b.height
                )));
            }
            let file = open_segment(&h, need, false)?;
            let mut buf = vec![0u8; need];
            file.read_exact_at(&mut buf, h.offset)
                .map_err(|e| Status::invalid_argument(format!("The shared memory segment could not be read: {e}.")))?;
            buf
        }
        None => return Err(Status::invalid_argument("The bitmap has neither byte_data nor a shared_memory_handle.")),
    };
    RgbImage::from_raw(b.width as u32, b.height as u32, bytes).ok_or_else(|| Status::internal("the bitmap could not be built"))
}

/// The anomaly mask as an RGB888 bitmap: inline, or written into the caller's segment (then the answer names
/// that segment instead of carrying the bytes). Blocking.
pub fn mask(rgb: RgbImage, into: Option<&SharedMemoryHandle>) -> Result<Bitmap, Status> {
    let (width, height) = (rgb.width() as i32, rgb.height() as i32);
    let data = match into {
        Some(h) => {
            let bytes = rgb.into_raw();
            let file = open_segment(h, bytes.len(), true)?;
            file.write_all_at(&bytes, h.offset)
                .map_err(|e| Status::invalid_argument(format!("The mask could not be written to shared memory: {e}.")))?;
            bitmap::Data::SharedMemoryHandle(SharedMemoryHandle { name: h.name.clone(), size: bytes.len() as u64, offset: h.offset })
        }
        None => bitmap::Data::ByteData(rgb.into_raw()),
    };
    Ok(Bitmap { width, height, data: Some(data) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(w: i32, h: i32, n: usize) -> Bitmap {
        Bitmap { width: w, height: h, data: Some(bitmap::Data::ByteData(vec![7; n])) }
    }

    #[test]
    fn sides_and_byte_counts_are_checked() {
        assert_eq!(read(Some(inline(64, 64, 64 * 64 * 3))).unwrap().dimensions(), (64, 64));
        for b in [inline(63, 64, 63 * 64 * 3), inline(64, 4097, 64 * 4097 * 3), inline(64, 64, 64 * 64 * 3 - 1), inline(-1, 64, 0)] {
            assert_eq!(read(Some(b)).unwrap_err().code(), tonic::Code::InvalidArgument);
        }
        assert_eq!(read(None).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn segment_names_cannot_escape() {
        for bad in ["", "/", "..", "/../etc/passwd", "a/b", "x\0y"] {
            assert!(segment_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(segment_path("/psm_1").unwrap(), PathBuf::from("/dev/shm/psm_1"));
        assert_eq!(segment_path("psm_1").unwrap(), PathBuf::from("/dev/shm/psm_1"));
    }

    #[test]
    fn shared_memory_round_trip() {
        let name = format!("vigil-test-{}", std::process::id());
        let path = PathBuf::from(SHM_DIR).join(&name);
        let n = 64 * 64 * 3;
        let mut content = vec![0u8; 16 + n];
        content[16..].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
        std::fs::write(&path, &content).unwrap();
        let h = SharedMemoryHandle { name: name.clone(), size: n as u64, offset: 16 };
        let b = Bitmap { width: 64, height: 64, data: Some(bitmap::Data::SharedMemoryHandle(h.clone())) };
        let img = read(Some(b)).unwrap();
        assert_eq!(img.as_raw()[..], content[16..]);
        // Beyond the segment's end.
        let far = SharedMemoryHandle { offset: 17, ..h.clone() };
        let b = Bitmap { width: 64, height: 64, data: Some(bitmap::Data::SharedMemoryHandle(far)) };
        assert_eq!(read(Some(b)).unwrap_err().code(), tonic::Code::InvalidArgument);
        // The mask goes back into the segment.
        let out = mask(RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])), Some(&h)).unwrap();
        assert!(matches!(out.data, Some(bitmap::Data::SharedMemoryHandle(_))));
        assert_eq!(&std::fs::read(&path).unwrap()[16..19], &[1, 2, 3]);
        std::fs::remove_file(&path).unwrap();
    }
}
