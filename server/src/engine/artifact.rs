//! The model artifact: one self-describing, versioned file.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "VIGILMDL"            8 bytes, magic
//! format version        u32
//! header length         u64, bytes of the JSON header that follows
//! header                UTF-8 JSON: everything about the model (see `header::ModelHeader`) plus
//!                       "tensors": [{"name", "shape", "offset", "numel"}] and "blob_sha256"
//! blob                  the tensors' values, f32 little-endian, row-major, at their offsets
//! ```
//!
//! Any tool can read the header with a JSON parser; the tensors are plain arrays. Values are stored bit-exact,
//! so a loaded model computes exactly what the trained one did.

use super::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

pub const MAGIC: &[u8; 8] = b"VIGILMDL";
/// The version written. Bumped on any change that an older reader would misread (version 2: a PCA with a
/// residual column, per-fold image heads, the backbone checksum; version 3: a Gaussian model of pooled
/// features fused into the score, image heads that take the image scores; version 4: the image score's
/// reweighting by the bank neighbourhood, `patchcore.reweight_neighbours`).
pub const FORMAT_VERSION: u32 = 4;
/// The oldest version this reader still understands: fields added since then have serde defaults that
/// reproduce the older behaviour.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// A header larger than this is refused (a corrupt length must not allocate gigabytes).
const MAX_HEADER: u64 = 256 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<i64>,
    /// Byte offset into the blob.
    pub offset: u64,
    pub numel: u64,
}

/// Serialises a JSON header and named f32 tensors into the artifact format.
pub fn to_bytes(header: &serde_json::Value, tensors: &[(&str, &Tensor)]) -> Result<Vec<u8>> {
    let mut blob: Vec<u8> = Vec::new();
    let mut entries = Vec::new();
    for (name, t) in tensors {
        let shape = t.size();
        let flat = t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?;
        let v: Vec<f32> = Vec::try_from(&flat)?;
        entries.push(TensorEntry { name: name.to_string(), shape, offset: blob.len() as u64, numel: v.len() as u64 });
        blob.reserve(v.len() * 4);
        for x in v {
            blob.extend_from_slice(&x.to_le_bytes());
        }
    }
    let mut header = header.clone();
    let obj = header.as_object_mut().ok_or_else(|| Error::Artifact("header must be a JSON object".into()))?;
    obj.insert("tensors".into(), serde_json::to_value(&entries).map_err(|e| Error::Artifact(e.to_string()))?);
    obj.insert("blob_sha256".into(), hex::encode(Sha256::digest(&blob)).into());
    let header_bytes = serde_json::to_vec(&header).map_err(|e| Error::Artifact(e.to_string()))?;
    let mut out = Vec::with_capacity(20 + header_bytes.len() + blob.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&blob);
    Ok(out)
}

/// Reads only the JSON header (cheap: for listing models without loading tensors).
pub fn read_header(bytes: &[u8]) -> Result<serde_json::Value> {
    let (header, _) = split(bytes)?;
    Ok(header)
}

/// The format version of an artifact (without checking that this Vigil can read it).
pub fn format_version(bytes: &[u8]) -> Result<u32> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(Error::Artifact("not a Vigil model file".into()));
    }
    Ok(u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]))
}

fn split(bytes: &[u8]) -> Result<(serde_json::Value, &[u8])> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(Error::Artifact("not a Vigil model file".into()));
    }
    let version = format_version(bytes)?;
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::Artifact(format!(
            "model format version {version}; this Vigil reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"
        )));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or([0; 8]));
    if len > MAX_HEADER || 20 + len > bytes.len() as u64 {
        return Err(Error::Artifact("truncated or corrupt model header".into()));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + len as usize])
        .map_err(|e| Error::Artifact(format!("model header: {e}")))?;
    Ok((header, &bytes[20 + len as usize..]))
}

/// Parses an artifact: the header (with `tensors` and `blob_sha256`) and the tensors by name.
pub fn from_bytes(bytes: &[u8]) -> Result<(serde_json::Value, BTreeMap<String, Tensor>)> {
    let (header, blob) = split(bytes)?;
    let want = header.get("blob_sha256").and_then(|v| v.as_str()).unwrap_or("");
    if hex::encode(Sha256::digest(blob)) != want {
        return Err(Error::Artifact("model data does not match its checksum (corrupt or truncated file)".into()));
    }
    let entries: Vec<TensorEntry> = serde_json::from_value(header.get("tensors").cloned().unwrap_or_default())
        .map_err(|e| Error::Artifact(format!("tensor table: {e}")))?;
    let mut out = BTreeMap::new();
    for e in entries {
        let end = checked_extent(&e).filter(|&end| end <= blob.len() as u64);
        let Some(end) = end else {
            return Err(Error::Artifact(format!("tensor {} is out of bounds", e.name)));
        };
        let raw = &blob[e.offset as usize..end as usize];
        let v: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = Tensor::f_from_slice(&v)?.f_view(e.shape.as_slice())?;
        out.insert(e.name, t);
    }
    Ok((header, out))
}

/// The end offset of a tensor's bytes, or `None` when its shape has a negative side, its element count or
/// byte length overflows, or the count disagrees with the shape (a corrupt table must not wrap around).
fn checked_extent(e: &TensorEntry) -> Option<u64> {
    let numel = e.shape.iter().try_fold(1u64, |acc, &d| if d < 0 { None } else { acc.checked_mul(d as u64) })?;
    if numel != e.numel {
        return None;
    }
    e.offset.checked_add(numel.checked_mul(4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact_and_corruption_is_detected() {
        let a = Tensor::from_slice(&[1.0f32, -0.1, 3.3e-8, f32::MAX, 0.333_333_34, 7.0]).view([2, 3]);
        let b = Tensor::from_slice(&[42.0f32]);
        let bytes = to_bytes(&serde_json::json!({"hello": 1}), &[("a", &a), ("b", &b)]).unwrap();
        let (h, t) = from_bytes(&bytes).unwrap();
        assert_eq!(h["hello"], 1);
        assert!(t["a"].equal(&a) && t["b"].equal(&b));
        assert_eq!(t["a"].size(), [2, 3]);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(from_bytes(&bad).is_err());
        assert!(from_bytes(&bytes[..n - 3]).is_err());
        assert!(from_bytes(b"nonsense").is_err());
        let mut wrong_version = bytes.clone();
        wrong_version[8] = 99;
        assert!(from_bytes(&wrong_version).is_err());
        // Every version in the readable range is accepted.
        let mut old = bytes.clone();
        old[8..12].copy_from_slice(&MIN_FORMAT_VERSION.to_le_bytes());
        assert!(from_bytes(&old).is_ok());
        assert_eq!(format_version(&old).unwrap(), MIN_FORMAT_VERSION);
    }

    #[test]
    fn shape_products_that_overflow_are_refused() {
        let e = |shape: Vec<i64>, numel: u64, offset: u64| TensorEntry { name: "t".into(), shape, offset, numel };
        assert_eq!(checked_extent(&e(vec![2, 3], 6, 8)), Some(32));
        // 2^32 · 2^32 wraps to 0 in u64 arithmetic that does not check.
        assert_eq!(checked_extent(&e(vec![1 << 32, 1 << 32], 0, 0)), None);
        assert_eq!(checked_extent(&e(vec![-2, -3], 6, 0)), None);
        assert_eq!(checked_extent(&e(vec![2, 3], 7, 0)), None);
        assert_eq!(checked_extent(&e(vec![1 << 62], 1 << 62, 0)), None, "bytes overflow");
        assert_eq!(checked_extent(&e(vec![4], 4, u64::MAX - 8)), None, "offset overflow");
        // A forged table in a real file is an error, not a panic or a huge allocation.
        let a = Tensor::from_slice(&[1.0f32, 2.0]);
        let bytes = to_bytes(&serde_json::json!({}), &[("a", &a)]).unwrap();
        let (mut h, _) = split(&bytes).unwrap();
        h["tensors"][0]["shape"] = serde_json::json!([4294967296i64, 4294967296i64]);
        h["tensors"][0]["numel"] = 0.into();
        let (_, blob) = split(&bytes).unwrap();
        let hb = serde_json::to_vec(&h).unwrap();
        let mut forged = Vec::new();
        forged.extend_from_slice(MAGIC);
        forged.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        forged.extend_from_slice(&(hb.len() as u64).to_le_bytes());
        forged.extend_from_slice(&hb);
        forged.extend_from_slice(blob);
        assert!(from_bytes(&forged).is_err());
    }
}
