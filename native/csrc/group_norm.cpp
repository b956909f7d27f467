// relu(group_norm(x)), or group_norm(x) alone, as one autograd node, for contiguous NCHW or
// channels-last float tensors on the CPU. Both are max(group_norm(x), lo), with lo = 0 for the
// ReLU and lo = -inf without it; the backward passes the gradient where y > lo.
//
// Why: ATen runs GroupNorm and ReLU as separate kernels, and their backwards as three more
// passes (threshold_backward, then GroupNorm's two); its channels-last GroupNorm backward is
// also much slower than its NCHW one (docs/perf-log.md). On the dense block's large activations
// those passes are bound by memory bandwidth. Here each (sample, group) slice, at most a few
// hundred KiB, is normalised and rectified while it sits in cache, and the backward reads the
// upstream gradient, the input and the output once per slice.
//
// Called from Rust (native/src/model/group_norm.rs) with tch's tensor pointers (`at::Tensor*`).
// Errors never cross the C boundary as exceptions: they come back as a malloc'd message.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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

// y = max(x * scale + shift, lo).
HN_KERNEL void row_affine_floor(const float* x, float* y, int64_t n, float scale, float shift, float lo) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * scale + shift;
    y[i] = v > lo ? v : lo;
  }
}

// Over a row, with g = dy where y > lo (else 0): sum of g * x and sum of g. (`omp simd`
// licenses the reordered, vectorised sums and the branch-free select.)
HN_KERNEL void row_grad_sums(const float* dy, const float* y, const float* x, int64_t n, float lo, double* gx, double* g) {
  float sx = 0.f, sg = 0.f;
#pragma omp simd reduction(+ : sx, sg)
  for (int64_t i = 0; i < n; ++i) {
    const float d = y[i] > lo ? dy[i] : 0.f;
    sx += d * x[i];
    sg += d;
  }
  *gx = sx;
  *g = sg;
}

// dx = a * g + b * x + c, with g = dy where y > lo (else 0).
HN_KERNEL void row_input_grad(const float* dy, const float* y, const float* x, float* dx, int64_t n, float lo, float a, float b, float c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float d = y[i] > lo ? dy[i] : 0.f;
    dx[i] = a * d + b * x[i] + c;
  }
}

// Channels-last slices of one sample: `hw` pixels of `c` adjacent channels each. The loops run
// over channels innermost (contiguous), with per-channel accumulators of length c.

// acc[k] += sum over pixels of x[p, k].
HN_KERNEL void pix_sum(const float* x, int64_t hw, int64_t c, float* acc) {
  for (int64_t p = 0; p < hw; ++p) {
    const float* xp = x + p * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) acc[k] += xp[k];
  }
}

// acc[k] += sum over pixels of (x[p, k] - mu[k])^2.
HN_KERNEL void pix_sq_dev(const float* x, int64_t hw, int64_t c, const float* mu, float* acc) {
  for (int64_t p = 0; p < hw; ++p) {
    const float* xp = x + p * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      const float d = xp[k] - mu[k];
      acc[k] += d * d;
    }
  }
}

// y[p, k] = max(x[p, k] * scale[k] + shift[k], lo).
HN_KERNEL void pix_affine_floor(const float* x, float* y, int64_t hw, int64_t c, const float* scale, const float* shift, float lo) {
  for (int64_t p = 0; p < hw; ++p) {
    const float* xp = x + p * c;
    float* yp = y + p * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      const float v = xp[k] * scale[k] + shift[k];
      yp[k] = v > lo ? v : lo;
    }
  }
}

// With g = dy where y > lo (else 0): sx[k] += sum of g * x, sg[k] += sum of g, over pixels.
HN_KERNEL void pix_grad_sums(const float* dy, const float* y, const float* x, int64_t hw, int64_t c, float lo, float* sx, float* sg) {
  for (int64_t p = 0; p < hw; ++p) {
    const int64_t o = p * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      const float d = y[o + k] > lo ? dy[o + k] : 0.f;
      sx[k] += d * x[o + k];
      sg[k] += d;
    }
  }
}

// dx[p, k] = a[k] * g + b[k] * x[p, k] + cc[k], with g = dy where y > lo (else 0).
HN_KERNEL void pix_input_grad(const float* dy, const float* y, const float* x, float* dx, int64_t hw, int64_t c, float lo,
                              const float* a, const float* b, const float* cc) {
  for (int64_t p = 0; p < hw; ++p) {
    const int64_t o = p * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      const float d = y[o + k] > lo ? dy[o + k] : 0.f;
      dx[o + k] = a[k] * d + b[k] * x[o + k] + cc[k];
    }
  }
}

// The memory format the kernels run in: channels-last when x is laid out so (and is not also
// plain contiguous, as when C or H*W is 1), else NCHW.
at::MemoryFormat layout_of(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast) ? at::MemoryFormat::ChannelsLast
                                                                               : at::MemoryFormat::Contiguous;
}

// Shapes shared by the kernels below, and the output's lower bound.
struct Dims {
  int64_t n, c, hw, groups, cpg, d;
  float lo;
  Dims(const at::Tensor& x, int64_t g, float floor)
      : n(x.size(0)),
        c(x.size(1)),
        hw(x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1)),
        groups(g),
        cpg(c / g),
        d(cpg * hw),
        lo(floor) {}
};

struct GroupNormFloor : public torch::autograd::Function<GroupNormFloor> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                            int64_t groups, double eps, bool relu) {
    const at::MemoryFormat fmt = layout_of(x_in);
    const at::Tensor x = x_in.contiguous(fmt);
    const Dims dm(x, groups, relu ? 0.f : -INFINITY);
    at::Tensor y = at::empty_like(x, x.options(), fmt);
    at::Tensor mean = at::empty({dm.n, groups}, x.options());
    at::Tensor rstd = at::empty({dm.n, groups}, x.options());
    const at::Tensor w = weight.contiguous(), b = bias.contiguous();
    const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
    float *yp = y.data_ptr<float>(), *mp = mean.data_ptr<float>(), *rp = rstd.data_ptr<float>();
    if (fmt == at::MemoryFormat::ChannelsLast)
      forward_nhwc(dm, xp, wp, bp, eps, yp, mp, rp);
    else
      forward_nchw(dm, xp, wp, bp, eps, yp, mp, rp);
    // Without the ReLU every element passes (y > -inf), so x stands in for y: nothing keeps the
    // output alive for the backward.
    ctx->save_for_backward({x, w, relu ? y : x, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["relu"] = relu;
    return y;
  }

  // One (sample, group) per task: its channels are adjacent, (n*C + g*cpg)*HW = ng*d.
  static void forward_nchw(const Dims& dm, const float* xp, const float* wp, const float* bp, double eps, float* yp, float* mp,
                           float* rp) {
    at::parallel_for(0, dm.n * dm.groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t c0 = (ng % dm.groups) * dm.cpg;
        const float* xg = xp + ng * dm.d;
        const float mu = float(row_sum(xg, dm.d) / double(dm.d));
        const double var = row_sq_dev(xg, dm.d, mu) / double(dm.d);
        const float r = float(1.0 / std::sqrt(var + eps));
        for (int64_t k = 0; k < dm.cpg; ++k) {
          const float scale = r * wp[c0 + k];
          row_affine_floor(xg + k * dm.hw, yp + ng * dm.d + k * dm.hw, dm.hw, scale, bp[c0 + k] - mu * scale, dm.lo);
        }
        mp[ng] = mu;
        rp[ng] = r;
      }
    });
  }

  // One sample per task: per-channel sums over its pixels, then per-group statistics.
  static void forward_nhwc(const Dims& dm, const float* xp, const float* wp, const float* bp, double eps, float* yp, float* mp,
                           float* rp) {
    at::parallel_for(0, dm.n, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> acc(dm.c), mu_c(dm.c), scale(dm.c), shift(dm.c);
      for (int64_t i = begin; i < end; ++i) {
        const float* xs = xp + i * dm.hw * dm.c;
        std::fill(acc.begin(), acc.end(), 0.f);
        pix_sum(xs, dm.hw, dm.c, acc.data());
        for (int64_t g = 0; g < dm.groups; ++g) {
          double s = 0;
          for (int64_t k = 0; k < dm.cpg; ++k) s += acc[g * dm.cpg + k];
          mp[i * dm.groups + g] = float(s / double(dm.d));
          for (int64_t k = 0; k < dm.cpg; ++k) mu_c[g * dm.cpg + k] = mp[i * dm.groups + g];
        }
        std::fill(acc.begin(), acc.end(), 0.f);
        pix_sq_dev(xs, dm.hw, dm.c, mu_c.data(), acc.data());
        for (int64_t g = 0; g < dm.groups; ++g) {
          double q = 0;
          for (int64_t k = 0; k < dm.cpg; ++k) q += acc[g * dm.cpg + k];
          const float r = float(1.0 / std::sqrt(q / double(dm.d) + eps));
          rp[i * dm.groups + g] = r;
          for (int64_t k = 0; k < dm.cpg; ++k) {
            const int64_t ch = g * dm.cpg + k;
            scale[ch] = r * wp[ch];
            shift[ch] = bp[ch] - mu_c[ch] * scale[ch];
          }
        }
        pix_affine_floor(xs, yp + i * dm.hw * dm.c, dm.hw, dm.c, scale.data(), shift.data(), dm.lo);
      }
    });
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &y = saved[2], &mean = saved[3], &rstd = saved[4];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const bool relu = ctx->saved_data["relu"].toBool();
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::MemoryFormat fmt = layout_of(x);
    const at::Tensor dy = grad_outputs[0].contiguous(fmt);
    const Dims dm(x, groups, relu ? 0.f : -INFINITY);
    at::Tensor dx = at::empty_like(x, x.options(), fmt);
    // Per (sample, channel): sum of g*x and of g, in double (they feed the weight gradients).
    at::Tensor sums = at::empty({dm.n, dm.c, 2}, x.options().dtype(at::kDouble));
    const float *dyp = dy.const_data_ptr<float>(), *yp = y.const_data_ptr<float>(), *xp = x.const_data_ptr<float>();
    const float *wp = w.const_data_ptr<float>(), *mp = mean.const_data_ptr<float>(), *rp = rstd.const_data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    double* sp = sums.data_ptr<double>();
    if (fmt == at::MemoryFormat::ChannelsLast)
      backward_nhwc(dm, dyp, yp, xp, wp, mp, rp, dxp, sp);
    else
      backward_nchw(dm, dyp, yp, xp, wp, mp, rp, dxp, sp);
    // d weight_c = sum_n r_ng * (sum g*x - mean_ng * sum g); d bias_c = sum_n sum g.
    at::Tensor dw = at::zeros({dm.c}, x.options().dtype(at::kDouble));
    at::Tensor db = at::zeros({dm.c}, x.options().dtype(at::kDouble));
    double *dwp = dw.data_ptr<double>(), *dbp = db.data_ptr<double>();
    for (int64_t i = 0; i < dm.n; ++i)
      for (int64_t ch = 0; ch < dm.c; ++ch) {
        const int64_t ng = i * groups + ch / dm.cpg;
        const double* s = sp + 2 * (i * dm.c + ch);
        dwp[ch] += double(rp[ng]) * (s[0] - double(mp[ng]) * s[1]);
        dbp[ch] += s[1];
      }
    return {dx, dw.to(at::kFloat), db.to(at::kFloat), at::Tensor(), at::Tensor(), at::Tensor()};
  }

  // GroupNorm's input gradient with the mean and variance terms folded into two constants per
  // (sample, group): dx = r*w_c*g + b2*x + b3, where, over the group's D elements,
  // b2 = (sum_c w_c*sum(g) * mean - sum_c w_c*sum(g*x)) * r^3 / D and b3 = -b2*mean - sum_c w_c*sum(g) * r / D.
  static void fold(const Dims& dm, const float* wp, const double* s_nc, double mu, double r, double* b2, double* b3) {
    double wgx = 0, wg = 0;
    for (int64_t k = 0; k < dm.cpg; ++k) {
      wgx += double(wp[k]) * s_nc[2 * k];
      wg += double(wp[k]) * s_nc[2 * k + 1];
    }
    *b2 = (wg * mu - wgx) * r * r * r / double(dm.d);
    *b3 = -*b2 * mu - wg * r / double(dm.d);
  }

  static void backward_nchw(const Dims& dm, const float* dyp, const float* yp, const float* xp, const float* wp, const float* mp,
                            const float* rp, float* dxp, double* sp) {
    at::parallel_for(0, dm.n * dm.groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t c0 = (ng % dm.groups) * dm.cpg;
        const int64_t base = ng * dm.d;
        double* s = sp + 2 * ng * dm.cpg;
        for (int64_t k = 0; k < dm.cpg; ++k) {
          const int64_t off = base + k * dm.hw;
          row_grad_sums(dyp + off, yp + off, xp + off, dm.hw, dm.lo, &s[2 * k], &s[2 * k + 1]);
        }
        double b2, b3;
        fold(dm, wp + c0, s, mp[ng], rp[ng], &b2, &b3);
        for (int64_t k = 0; k < dm.cpg; ++k) {
          const int64_t off = base + k * dm.hw;
          row_input_grad(dyp + off, yp + off, xp + off, dxp + off, dm.hw, dm.lo, rp[ng] * wp[c0 + k], float(b2), float(b3));
        }
      }
    });
  }

  static void backward_nhwc(const Dims& dm, const float* dyp, const float* yp, const float* xp, const float* wp, const float* mp,
                            const float* rp, float* dxp, double* sp) {
    at::parallel_for(0, dm.n, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> sx(dm.c), sg(dm.c), a(dm.c), b(dm.c), cc(dm.c);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t off = i * dm.hw * dm.c;
        std::fill(sx.begin(), sx.end(), 0.f);
        std::fill(sg.begin(), sg.end(), 0.f);
        pix_grad_sums(dyp + off, yp + off, xp + off, dm.hw, dm.c, dm.lo, sx.data(), sg.data());
        double* s = sp + 2 * i * dm.c;
        for (int64_t ch = 0; ch < dm.c; ++ch) {
          s[2 * ch] = sx[ch];
          s[2 * ch + 1] = sg[ch];
        }
        for (int64_t g = 0; g < dm.groups; ++g) {
          const int64_t c0 = g * dm.cpg, ng = i * dm.groups + g;
          double b2, b3;
          fold(dm, wp + c0, s + 2 * c0, mp[ng], rp[ng], &b2, &b3);
          for (int64_t k = 0; k < dm.cpg; ++k) {
            a[c0 + k] = rp[ng] * wp[c0 + k];
            b[c0 + k] = float(b2);
            cc[c0 + k] = float(b3);
          }
        }
        pix_input_grad(dyp + off, yp + off, xp + off, dxp + off, dm.hw, dm.c, dm.lo, a.data(), b.data(), cc.data());
      }
    });
  }
};

char* copy_message(const std::string& msg) {
  char* out = static_cast<char*>(std::malloc(msg.size() + 1));
  if (out != nullptr) std::memcpy(out, msg.c_str(), msg.size() + 1);
  return out;
}

}  // namespace

extern "C" {

// *out = group_norm(*x, groups, *weight, *bias, eps), rectified when relu != 0, as a new tensor. Returns null on
// success, else a malloc'd message (free it with hn_fused_free_message). The caller has checked
// that x is a 4-D float CPU tensor, contiguous or channels-last, with C divisible by groups.
char* hn_fused_group_norm(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias, int64_t groups, double eps, int relu,
                          at::Tensor** out) {
  try {
    *out = new at::Tensor(GroupNormFloor::apply(*x, *weight, *bias, groups, eps, relu != 0));
    return nullptr;
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception in the fused group_norm");
  }
}

void hn_fused_free_message(char* msg) { std::free(msg); }
}
