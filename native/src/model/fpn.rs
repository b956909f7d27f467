//! The seed's FPN: lateral 1x1 convs and 3x3 output convs over `trans1`, `res_2`, `res_3`.
//! Its maps never reach the classifier; [`FpnMode::Skip`](super::FpnMode) keeps the
//! parameters (checkpoint compatibility) but does not compute them.

use super::kernels::Kernels;
use super::layers::Conv2d;
use crate::error::Result;
use tch::{nn, Tensor};

/// `fpn.{lateral_1..3, output_1..3}`.
#[derive(Debug)]
pub struct Fpn {
    lateral_1: Conv2d,
    lateral_2: Conv2d,
    lateral_3: Conv2d,
    output_1: Conv2d,
    output_2: Conv2d,
    output_3: Conv2d,
}

/// `F.interpolate(x, size=y.shape[2:], mode='bilinear', align_corners=False) + y`.
fn upsample_add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let size = y.size();
    let hw = [size.get(2).copied().unwrap_or(1), size.get(3).copied().unwrap_or(1)];
    Ok(x.f_upsample_bilinear2d(hw, false, None::<f64>, None::<f64>)?.f_add(y)?)
}

impl Fpn {
    /// Builds the FPN for stage channels `c1, c2, c3` and `out` output channels.
    pub fn new(p: &nn::Path, c1: i64, c2: i64, c3: i64, out: i64, kernels: &Kernels) -> Result<Self> {
        Ok(Self {
            lateral_1: Conv2d::new(&(p / "lateral_1"), c1, out, 1, 1, 0, true, kernels)?,
            lateral_2: Conv2d::new(&(p / "lateral_2"), c2, out, 1, 1, 0, true, kernels)?,
            lateral_3: Conv2d::new(&(p / "lateral_3"), c3, out, 1, 1, 0, true, kernels)?,
            output_1: Conv2d::new(&(p / "output_1"), out, out, 3, 1, 1, true, kernels)?,
            output_2: Conv2d::new(&(p / "output_2"), out, out, 3, 1, 1, true, kernels)?,
            output_3: Conv2d::new(&(p / "output_3"), out, out, 3, 1, 1, true, kernels)?,
        })
    }

    /// The seed's top-down pathway; returns `[p1, p2, p3]`.
    pub fn forward(&self, c1: &Tensor, c2: &Tensor, c3: &Tensor) -> Result<[Tensor; 3]> {
        let lateral_3 = self.lateral_3.forward(c3)?;
        let lateral_2 = self.lateral_2.forward(c2)?;
        let lateral_1 = self.lateral_1.forward(c1)?;
        let p3 = self.output_3.forward(&lateral_3)?;
        let p2 = self.output_2.forward(&lateral_2.f_add(&upsample_add(&lateral_3, &lateral_2)?)?)?;
        let p1 = self.output_1.forward(&lateral_1.f_add(&upsample_add(&p2, &lateral_1)?)?)?;
        Ok([p1, p2, p3])
    }
}
