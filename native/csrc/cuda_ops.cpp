// ATen calls that tch 0.24 does not bind: autocast with a dtype and a device type (tch's
// `autocast` is CUDA-only and always float16), the TF32 switches, the multi-tensor fused
// Adam/AdamW step and the total gradient norm over a tensor list (`_foreach_norm`).
//
// Every op declared here lives in libtorch_cpu (its CUDA kernels register themselves from
// libtorch_cuda when that is loaded), so this file builds and links against a CPU-only libtorch
// with no CUDA headers. Called from Rust (native/src/cuda/ops.rs) with tch's `at::Tensor*`.
// Errors never cross the C boundary as exceptions: they come back as a malloc'd message, freed
// with hn_fused_free_message (group_norm.cpp).

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <vector>

namespace {

char* cuda_ops_message(const char* text) {
  const size_t n = std::strlen(text);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) std::memcpy(out, text, n + 1);
  return out;
}

template <typename F>
char* guarded(const char* what, F&& body) {
  try {
    body();
    return nullptr;
  } catch (const std::exception& e) {
    return cuda_ops_message(e.what());
  } catch (...) {
    return cuda_ops_message(what);
  }
}

at::DeviceType device_type(int kind) { return kind == 1 ? at::kCUDA : at::kCPU; }

std::vector<at::Tensor> tensors(const at::Tensor* const* ts, int64_t n) {
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}

}  // namespace

extern "C" {

// An address inside libtorch_cpu (ATen's global context accessor): Rust passes it to dladdr to
// find the folder of the libtorch actually loaded, where libtorch_cuda.so must sit.
void* hn_torch_anchor() { return reinterpret_cast<void*>(&at::globalContext); }

// Turns autocast on or off for one device type (0 = CPU, 1 = CUDA) with bfloat16 as its lower
// precision; writes the previous enabled flag to *was_enabled. Leaving it (enabled = 0) also drops
// autocast's cache of cast weights, as torch.autocast does when its outermost context exits.
char* hn_autocast_set(int kind, int enabled, int* was_enabled) {
  return guarded("unknown C++ exception in autocast", [&] {
    const at::DeviceType dt = device_type(kind);
    *was_enabled = at::autocast::is_autocast_enabled(dt) ? 1 : 0;
    if (enabled != 0) at::autocast::set_autocast_dtype(dt, at::kBFloat16);
    at::autocast::set_autocast_enabled(dt, enabled != 0);
    if (enabled == 0) at::autocast::clear_cache();
  });
}

// TF32 in cuBLAS matmuls and cuDNN convolutions, process-wide (PyTorch's
// torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32).
char* hn_cuda_set_tf32(int on) {
  return guarded("unknown C++ exception in set_tf32", [&] {
    at::globalContext().setAllowTF32CuBLAS(on != 0);
    at::globalContext().setAllowTF32CuDNN(on != 0);
  });
}

// Total L2 norm of n gradients (one multi-tensor pass per dtype and device), then, when
// max_norm > 0, scales them in place by min(1, max_norm / (norm + 1e-6)) computed on the device
// (torch.nn.utils.clip_grad_norm_'s rule). *out_norm receives the norm as a new 0-d float tensor
// on the gradients' device (the caller reads it when it needs the number).
char* hn_foreach_clip(const at::Tensor* const* grads, int64_t n, double max_norm, at::Tensor** out_norm) {
  return guarded("unknown C++ exception in foreach_clip", [&] {
    std::vector<at::Tensor> gs = tensors(grads, n);
    std::vector<at::Tensor> norms = at::_foreach_norm(gs, 2);
    at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2).to(at::kFloat);
    if (max_norm > 0) {
      at::Tensor coef = at::clamp_max(at::reciprocal(total + 1e-6) * max_norm, 1.0);
      at::_foreach_mul_(gs, coef);
    }
    *out_norm = new at::Tensor(total);
  });
}

// One fused Adam (adamw = 0) or AdamW (adamw = 1) update of n parameters: ATen's
// _fused_adam_/_fused_adamw_ (one multi-tensor kernel on CUDA). `steps` holds each parameter's
// step count after this update as a float tensor on the parameters' device.
char* hn_fused_adam_step(const at::Tensor* const* params, const at::Tensor* const* grads, const at::Tensor* const* exp_avgs,
                         const at::Tensor* const* exp_avg_sqs, const at::Tensor* const* steps, int64_t n, double lr,
                         double beta1, double beta2, double weight_decay, double eps, int adamw) {
  return guarded("unknown C++ exception in fused_adam_step", [&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> p = tensors(params, n), g = tensors(grads, n), m = tensors(exp_avgs, n),
                            v = tensors(exp_avg_sqs, n), s = tensors(steps, n);
    const std::vector<at::Tensor> none;
    if (adamw != 0) {
      at::_fused_adamw_(p, g, m, v, none, s, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, none, s, lr, beta1, beta2, weight_decay, eps, false, false);
    }
  });
}

}  // extern "C"
