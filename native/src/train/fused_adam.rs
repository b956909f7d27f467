//! Adam and AdamW as one pass over memory on CPU float32 tensors. PyTorch's default CPU Adam
//! runs about six element-wise kernels per parameter with temporaries (lerp, mul, addcmul,
//! sqrt, div, add, addcdiv); here each element's gradient, moments and weight are read once and
//! written once, the squared gradient norm is summed on the way (so reporting it costs no
//! extra pass) and a clipping factor is folded in (timings in docs/perf-log.md). Same update
//! rule and order of operations as `torch.optim.Adam(foreach=False)`. The optimizer takes this
//! pass when its config's `fused` is on; CUDA or non-contiguous tensors take the tensor path in
//! `optim.rs` instead.

use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use tch::{Device, Kind, Tensor};

/// The scalars of one parameter's update (its step count sets the bias corrections).
#[derive(Debug, Clone, Copy)]
pub struct AdamScalars {
    /// `1 - beta1`, the lerp weight of the first moment.
    pub one_minus_b1: f32,
    /// `beta2`.
    pub b2: f32,
    /// `1 - beta2`.
    pub one_minus_b2: f32,
    /// `lr / (1 - beta1^step)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^step)`.
    pub bc2_sqrt: f32,
    /// Epsilon added to the denominator.
    pub eps: f32,
    /// L2 weight decay added to the gradient (Adam); 0 for none.
    pub l2: f32,
    /// Decoupled decay factor `1 - lr * wd` applied to the weight first (AdamW); 1 for none.
    pub decay: f32,
}

/// Raw views of one parameter's four same-length float32 buffers.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    param: *mut f32,
    grad: *const f32,
    exp_avg: *mut f32,
    exp_avg_sq: *mut f32,
    len: usize,
    scalars: AdamScalars,
}

// SAFETY: a slot points into tensors the caller keeps alive and that no other thread touches
// during the pass (the model mutex is held); chunks of a slot never overlap.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

/// True when `t` can be read as one contiguous CPU float32 buffer.
pub fn is_plain_f32(t: &Tensor) -> bool {
    t.defined() && t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()
}

impl Slot {
    /// Views of the four tensors, or `None` when any of them is not plain CPU float32 of the
    /// parameter's length (the caller then uses the tensor path).
    pub fn new(param: &Tensor, grad: &Tensor, exp_avg: &Tensor, exp_avg_sq: &Tensor, scalars: AdamScalars) -> Option<Self> {
        let all = [param, grad, exp_avg, exp_avg_sq];
        if !all.iter().all(|t| is_plain_f32(t)) {
            return None;
        }
        let len = param.numel();
        if all.iter().any(|t| t.numel() != len) {
            return None;
        }
        Some(Self {
            param: param.data_ptr() as *mut f32,
            grad: grad.data_ptr() as *const f32,
            exp_avg: exp_avg.data_ptr() as *mut f32,
            exp_avg_sq: exp_avg_sq.data_ptr() as *mut f32,
            len,
            scalars,
        })
    }
}

/// Elements per work item: big enough to amortise scheduling, small enough to balance.
pub(crate) const CHUNK: usize = 1 << 15;

/// The work items over buffers of lengths `lens`: (buffer index, first element).
pub(crate) fn work_items(lens: impl Iterator<Item = usize>) -> Vec<(usize, usize)> {
    lens.enumerate().flat_map(|(i, len)| (0..len).step_by(CHUNK).map(move |start| (i, start))).collect()
}

/// Updates every slot, scaling each gradient by `grad_scale` first (clipping); returns the sum
/// of squares of the unscaled gradients (f64). `None` (nothing touched) when no worker pool
/// could be made.
pub fn adam_pass(slots: &[Slot], grad_scale: f32) -> Option<f64> {
    let pool = pool()?;
    let items = work_items(slots.iter().map(|s| s.len));
    Some(pool.install(|| {
        items
            .par_iter()
            .map(|&(i, start)| {
                let s = &slots[i];
                let n = CHUNK.min(s.len - start);
                // SAFETY: `start + n <= len`, the buffers are live and distinct (Slot::new), and
                // each (slot, start) item is visited by exactly one thread.
                unsafe {
                    adam_chunk(
                        std::slice::from_raw_parts_mut(s.param.add(start), n),
                        std::slice::from_raw_parts(s.grad.add(start), n),
                        std::slice::from_raw_parts_mut(s.exp_avg.add(start), n),
                        std::slice::from_raw_parts_mut(s.exp_avg_sq.add(start), n),
                        &s.scalars,
                        grad_scale,
                    )
                }
            })
            .sum()
    }))
}

/// Sum of squares of the gradients (for clipping before the update).
pub fn grad_sumsq(grads: &[&Tensor]) -> Option<f64> {
    if !grads.iter().all(|g| is_plain_f32(g)) {
        return None;
    }
    let pool = pool()?;
    let items = work_items(grads.iter().map(|g| g.numel()));
    let ptrs: Vec<(usize, usize)> = grads.iter().map(|g| (g.data_ptr() as usize, g.numel())).collect();
    Some(pool.install(|| {
        items
            .par_iter()
            .map(|&(i, start)| {
                let (ptr, len) = ptrs[i];
                let n = CHUNK.min(len - start);
                // SAFETY: a live contiguous float32 buffer of `len` elements, read only.
                let g = unsafe { std::slice::from_raw_parts((ptr as *const f32).add(start), n) };
                g.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
            })
            .sum()
    }))
}

/// The update of one chunk, in PyTorch's order: decay, `m.lerp_(g, 1-b1)`,
/// `v = v*b2 + (1-b2)*g*g`, `denom = sqrt(v)/bc2_sqrt + eps`, `p -= step_size * m / denom`.
/// Compiled for AVX-512 / AVX2 when the CPU has them (element-wise f32 either way, no FMA
/// contraction, so every build gives the same bits).
fn adam_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars, grad_scale: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { adam_chunk_avx512(p, g, m, v, s, grad_scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { adam_chunk_avx2(p, g, m, v, s, grad_scale) };
        }
    }
    adam_chunk_body(p, g, m, v, s, grad_scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn adam_chunk_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars, k: f32) -> f64 {
    adam_chunk_body(p, g, m, v, s, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_chunk_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars, k: f32) -> f64 {
    adam_chunk_body(p, g, m, v, s, k)
}

/// Lanes of the inner loop: the squared-norm sum is kept per lane so the loop vectorises.
const LANES: usize = 16;

#[inline(always)]
fn adam_chunk_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars, grad_scale: f32) -> f64 {
    #[inline(always)]
    fn one(p: &mut f32, g: f32, m: &mut f32, v: &mut f32, s: &AdamScalars, grad_scale: f32) {
        let mut g = g * grad_scale;
        *p *= s.decay;
        g += s.l2 * *p;
        *m += s.one_minus_b1 * (g - *m);
        *v = *v * s.b2 + s.one_minus_b2 * g * g;
        let denom = v.sqrt() / s.bc2_sqrt + s.eps;
        *p -= s.step_size * (*m / denom);
    }
    let mut acc = [0f32; LANES];
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let whole = n - n % LANES;
    let (p_main, p_tail) = p[..n].split_at_mut(whole);
    let (g_main, g_tail) = g[..n].split_at(whole);
    let (m_main, m_tail) = m[..n].split_at_mut(whole);
    let (v_main, v_tail) = v[..n].split_at_mut(whole);
    for (((p, g), m), v) in p_main
        .chunks_exact_mut(LANES)
        .zip(g_main.chunks_exact(LANES))
        .zip(m_main.chunks_exact_mut(LANES))
        .zip(v_main.chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            acc[l] += g[l] * g[l];
            one(&mut p[l], g[l], &mut m[l], &mut v[l], s, grad_scale);
        }
    }
    let mut sumsq: f64 = acc.iter().map(|&a| f64::from(a)).sum();
    for (((p, &g), m), v) in p_tail.iter_mut().zip(g_tail).zip(m_tail.iter_mut()).zip(v_tail.iter_mut()) {
        sumsq += f64::from(g) * f64::from(g);
        one(p, g, m, v, s, grad_scale);
    }
    sumsq
}

/// A rayon pool with torch's thread count (rebuilt when that changes), so the optimizer uses
/// the same cores the rest of the step does and no more. `None` if threads cannot be spawned.
pub(crate) fn pool() -> Option<Arc<rayon::ThreadPool>> {
    static POOL: Mutex<Option<(i32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);
    let threads = tch::get_num_threads().max(1);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((n, p)) = guard.as_ref() {
        if *n == threads {
            return Some(p.clone());
        }
    }
    let pool =
        Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads as usize).thread_name(|i| format!("hn-optim-{i}")).build().ok()?);
    *guard = Some((threads, pool.clone()));
    Some(pool)
}
