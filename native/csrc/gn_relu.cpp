// relu(group_norm(x)) as one autograd node, for contiguous NCHW float tensors on the CPU.
//
// Why: ATen runs GroupNorm and ReLU as separate kernels, and their backwards as three more
// passes (threshold_backward, then GroupNorm's two). On the dense block's large activations
// those passes are bound by memory bandwidth. Here each (sample, group) slice, at most a few
// hundred KiB, is normalised and rectified while it sits in cache, and the backward reads the
// upstream gradient, the input and the output once per slice.
//
// Called from Rust (native/src/model/fused.rs) with tch's tensor pointers (`at::Tensor*`).
// Errors never cross the C boundary as exceptions: they come back as a malloc'd message.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int kLanes = 8;

// The hot loops are plain C++ with kLanes independent accumulators, which the compiler turns
// into SIMD code without reassociating; target_clones adds an AVX2+FMA copy picked at load time.
#define HN_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))

// Sum of a row, accumulated in kLanes float lanes and returned in double.
HN_KERNEL double row_sum(const float* x, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

// Sum of (x - mean)^2 over a row (the second, exact pass of the variance; the row is in cache).
HN_KERNEL double row_sq_dev(const float* x, int64_t n, float mean) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - mean;
      acc[j] += d * d;
    }
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += double(x[i] - mean) * double(x[i] - mean);
  return s;
}

// y = max(x * scale + shift, 0).
HN_KERNEL void row_affine_relu(const float* x, float* y, int64_t n, float scale, float shift) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * scale + shift;
    y[i] = v > 0.f ? v : 0.f;
  }
}

// Over a row, with g = dy where y > 0 (else 0): sum of g * x and sum of g. (`omp simd`
// licenses the reordered, vectorised sums and the branch-free select; -fopenmp-simd, no runtime.)
HN_KERNEL void row_grad_sums(const float* dy, const float* y, const float* x, int64_t n, double* gx, double* g) {
  float sx = 0.f, sg = 0.f;
#pragma omp simd reduction(+ : sx, sg)
  for (int64_t i = 0; i < n; ++i) {
    const float d = y[i] > 0.f ? dy[i] : 0.f;
    sx += d * x[i];
    sg += d;
  }
  *gx = sx;
  *g = sg;
}

// dx = a * g + b * x + c, with g = dy where y > 0 (else 0).
HN_KERNEL void row_input_grad(const float* dy, const float* y, const float* x, float* dx, int64_t n, float a, float b, float c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float d = y[i] > 0.f ? dy[i] : 0.f;
    dx[i] = a * d + b * x[i] + c;
  }
}

struct GroupNormRelu : public torch::autograd::Function<GroupNormRelu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                            int64_t groups, double eps) {
    const at::Tensor x = x_in.contiguous();
    const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const int64_t cpg = c / groups, d = cpg * hw;
    at::Tensor y = at::empty_like(x);
    at::Tensor mean = at::empty({n, groups}, x.options());
    at::Tensor rstd = at::empty({n, groups}, x.options());
    const at::Tensor w = weight.contiguous(), b = bias.contiguous();
    const float* xp = x.const_data_ptr<float>();
    const float* wp = w.const_data_ptr<float>();
    const float* bp = b.const_data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* mp = mean.data_ptr<float>();
    float* rp = rstd.data_ptr<float>();
    at::parallel_for(0, n * groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t c0 = (ng % groups) * cpg;
        const float* xg = xp + ng * d;  // channels of a group are adjacent: (n*C + g*cpg)*HW = ng*d
        const float mu = float(row_sum(xg, d) / double(d));
        const double var = row_sq_dev(xg, d, mu) / double(d);
        const float r = float(1.0 / std::sqrt(var + eps));
        for (int64_t k = 0; k < cpg; ++k) {
          const float scale = r * wp[c0 + k];
          row_affine_relu(xg + k * hw, yp + ng * d + k * hw, hw, scale, bp[c0 + k] - mu * scale);
        }
        mp[ng] = mu;
        rp[ng] = r;
      }
    });
    ctx->save_for_backward({x, w, y, mean, rstd});
    ctx->saved_data["groups"] = groups;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &y = saved[2], &mean = saved[3], &rstd = saved[4];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor dy = grad_outputs[0].contiguous();
    const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
    const int64_t cpg = c / groups, d = cpg * hw;
    at::Tensor dx = at::empty_like(x);
    // Per (sample, channel): sum of g*x and of g, in double (they feed the weight gradients).
    at::Tensor sums = at::empty({n, c, 2}, x.options().dtype(at::kDouble));
    const float *dyp = dy.const_data_ptr<float>(), *yp = y.const_data_ptr<float>(), *xp = x.const_data_ptr<float>();
    const float *wp = w.const_data_ptr<float>(), *mp = mean.const_data_ptr<float>(), *rp = rstd.const_data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    double* sp = sums.data_ptr<double>();
    at::parallel_for(0, n * groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t c0 = (ng % groups) * cpg;
        const int64_t base = ng * d;
        double wgx = 0, wg = 0;  // sum over the group's channels of w_c * (sum g*x), of w_c * (sum g)
        for (int64_t k = 0; k < cpg; ++k) {
          double* s = sp + 2 * (ng * cpg + k);
          row_grad_sums(dyp + base + k * hw, yp + base + k * hw, xp + base + k * hw, hw, &s[0], &s[1]);
          wgx += double(wp[c0 + k]) * s[0];
          wg += double(wp[c0 + k]) * s[1];
        }
        // dx = r*w_c*g + b2*x + b3 (GroupNorm's input gradient with mean/variance terms folded).
        const double mu = mp[ng], r = rp[ng];
        const double b2 = (wg * mu - wgx) * r * r * r / double(d);
        const double b3 = -b2 * mu - wg * r / double(d);
        for (int64_t k = 0; k < cpg; ++k) {
          const int64_t off = base + k * hw;
          row_input_grad(dyp + off, yp + off, xp + off, dxp + off, hw, float(r * wp[c0 + k]), float(b2), float(b3));
        }
      }
    });
    // d weight_c = sum_n r_ng * (sum g*x - mean_ng * sum g); d bias_c = sum_n sum g.
    at::Tensor dw = at::zeros({c}, x.options().dtype(at::kDouble));
    at::Tensor db = at::zeros({c}, x.options().dtype(at::kDouble));
    double *dwp = dw.data_ptr<double>(), *dbp = db.data_ptr<double>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t ng = i * groups + ch / cpg;
        const double* s = sp + 2 * (i * c + ch);
        dwp[ch] += double(rp[ng]) * (s[0] - double(mp[ng]) * s[1]);
        dbp[ch] += s[1];
      }
    return {dx, dw.to(at::kFloat), db.to(at::kFloat), at::Tensor(), at::Tensor()};
  }
};

char* copy_message(const std::string& msg) {
  char* out = static_cast<char*>(std::malloc(msg.size() + 1));
  if (out != nullptr) std::memcpy(out, msg.c_str(), msg.size() + 1);
  return out;
}

}  // namespace

extern "C" {

// *out = relu(group_norm(*x, groups, *weight, *bias, eps)) as a new tensor. Returns null on
// success, else a malloc'd message (free it with hn_fused_free_message). The caller has checked
// that x is a 4-D contiguous float CPU tensor with C divisible by groups.
char* hn_fused_group_norm_relu(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias, int64_t groups, double eps,
                               at::Tensor** out) {
  try {
    *out = new at::Tensor(GroupNormRelu::apply(*x, *weight, *bias, groups, eps));
    return nullptr;
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception in group_norm_relu");
  }
}

void hn_fused_free_message(char* msg) { std::free(msg); }
}
