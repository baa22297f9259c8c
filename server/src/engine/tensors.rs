//! Small tensor conversions shared by the engine's modules.

use super::error::Result;
use tch::{Kind, Tensor};

/// Any tensor's values as f32, in row-major order.
pub(super) fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(&t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?)
}
