//! Memory layouts of 4-D tensors: channels-last strides (what PyTorch's
//! `memory_format=torch.channels_last` gives; tch has no memory-format API) and the test for them.

use crate::error::Result;
use tch::Tensor;

/// The same `[N, C, H, W]` tensor with channels-last strides. CPU kernels that have a
/// channels-last variant (oneDNN convolutions, GroupNorm, pooling) pick it from the strides, and
/// their outputs keep that layout. A no-op copy when `x` already has it.
pub fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

/// Whether `x` (4-D) has the strides [`to_channels_last`] gives: `[H·W·C, 1, W·C, C]`.
pub fn is_channels_last(x: &Tensor) -> bool {
    match x.size().as_slice() {
        [_, c, h, w] => x.stride() == [h * w * c, 1, w * c, *c],
        _ => false,
    }
}
