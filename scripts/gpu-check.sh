#!/usr/bin/env bash
# The packed GPU check (README, "GPU check"). Run it from a pack that `deno task gpu:pack` wrote:
#
#   bash gpu-pack/scripts/gpu-check.sh [--device cuda|cuda:N|cpu] [--smoke-only] [REPORT_DIR]
#
# It needs no network, cargo or npm: Deno and the npm modules come from the pack, libtorch from
# the machine's torch 2.11 (found through its Python). It writes one markdown report,
# REPORT_DIR/gpu-check.md (default: $OUT, else ./gpu-check-out), rewritten after every stage, so a
# stage that fails or runs out of time leaves what came before it, and gpu-check-logs.txt (every
# stage's whole output). Stages and time caps:
#   1. smoke (60 s with the set-up): library loads, device found, one forward/backward; a failure
#      here stops the check, so a broken pack costs a minute;
#   2. parity (40 s), 3. tests/gpu (50 s), 4. benchmark (90 s), 5. a short training run (45 s);
# all within HN_CHECK_BUDGET_S (default 230 s) from the start. On --device cpu (the pack proven on
# a machine without a GPU) the caps are 3x and the budget 600 s: a 2-core CPU is that much slower.
# Exit status: 0 all stages passed, 1 a stage failed or was cut, 2 usage.
set -u

PACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=${HN_CHECK_DEVICE:-cuda:0}
REPORT_DIR=${OUT:-$PWD/gpu-check-out}
SMOKE_ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=${2:-}; shift 2 ;;
    --device=*) DEVICE=${1#--device=}; shift ;;
    --smoke-only) SMOKE_ONLY=1; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) REPORT_DIR=$1; shift ;;
  esac
done
[ "$DEVICE" = cuda ] && DEVICE=cuda:0
case "$DEVICE" in cpu | cuda:[0-9]*) ;; *) echo "gpu-check: --device must be cpu, cuda or cuda:N" >&2; exit 2 ;; esac
if [ ! -f "$PACK/PACK.json" ]; then
  echo "gpu-check: $PACK is not a pack (no PACK.json); run 'deno task gpu:pack' and start gpu-pack/scripts/gpu-check.sh" >&2
  exit 2
fi

SCALE=1
[ "$DEVICE" = cpu ] && SCALE=3
BUDGET=${HN_CHECK_BUDGET_S:-$((SCALE == 1 ? 230 : 600))}
START=$(date +%s)
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
REPORT=$REPORT_DIR/gpu-check.md
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hn-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FRAGMENTS=()
STATUS=0

elapsed() { echo $(($(date +%s) - START)); }

# The report: header, then each stage's fragment, in order; written to a temp file, then moved.
assemble() {
  {
    echo "# GPU check: $DEVICE"
    echo
    echo "$(cat "$PACK/PACK.txt")" \
      "Started $(date -u -d "@$START" '+%Y-%m-%d %H:%M:%S') UTC; $(elapsed) s so far of a $BUDGET s budget."
    echo
    for f in "${FRAGMENTS[@]}"; do
      [ -f "$f" ] && cat "$f" && echo
    done
  } >"$REPORT.tmp" && mv "$REPORT.tmp" "$REPORT"
  # every stage's whole output beside the report, for what the report's excerpts leave out
  for f in "$WORK"/*.log; do
    [ -f "$f" ] && printf '===== %s\n' "$(basename "$f")" && sed -E 's/\x1b\[[0-9;]*m//g' "$f"
  done >"$REPORT_DIR/gpu-check-logs.txt"
}

# note NAME TEXT...: a fragment written by this script
note() {
  local f=$WORK/$1.md
  shift
  printf '%s\n' "$@" >>"$f"
  [[ " ${FRAGMENTS[*]} " == *" $f "* ]] || FRAGMENTS+=("$f")
}

# stage NAME CAP_S CMD...: runs CMD (which writes $WORK/NAME.md) under min(CAP_S, time left);
# on failure adds the exit status and the end of its output to the fragment.
stage() {
  local name=$1 cap=$(($2 * SCALE)) left
  shift 2
  FRAGMENTS+=("$WORK/$name.md")
  left=$((BUDGET - $(elapsed) - 3))
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    note "$name" "## $name" "" "**not run: the check's $BUDGET s budget is spent.**"
    STATUS=1
    assemble
    return 1
  fi
  local t0 rc
  t0=$(date +%s)
  timeout -k 5 "$cap" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    STATUS=1
    [ -s "$WORK/$name.md" ] || note "$name" "## $name" ""
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      note "$name" "" "**stage cut at its $cap s limit** (results above are what it finished)."
    else
      note "$name" "" "**stage failed: exit $rc after $(($(date +%s) - t0)) s.** End of its output:"
    fi
    note "$name" "" '```' "$(tail -n 60 "$WORK/$name.log" | sed -E 's/\x1b\[[0-9;]*m//g')" '```'
  fi
  assemble
  return $rc
}

# --- set-up: Deno, the npm cache, libtorch and its Python -------------------------------------

unxz_to() { # unxz_to SRC DEST: xz if present, else Python's lzma (both machines have Python)
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
setup() {
  unxz_to "$PACK/bin/deno.xz" "$WORK/deno" && chmod +x "$WORK/deno" || return 1
  mkdir -p "$WORK/deno-dir" "$WORK/home"
  if command -v xz >/dev/null; then
    tar -xJf "$PACK/deps/npm.tar.xz" -C "$WORK/deno-dir" || return 1
  else
    python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$PACK/deps/npm.tar.xz" "$WORK/deno-dir" || return 1
  fi
}

# A Python whose torch is 2.11 (the version the library was built against): the GPU machine's
# venv first, then the repository next to the pack (its CPU-view wrapper, then its venv), then
# PATH. Prints the Python, then torch's lib folder, then one line describing that torch.
TORCH_PROBE='import os, torch
assert torch.__version__.startswith("2.11"), torch.__version__
cuda = torch.cuda.is_available()
cudnn = torch.backends.cudnn.version() if cuda else "n/a"
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print("torch %s, CUDA %s, cuDNN %s, sees %d GPU(s)" % (torch.__version__, torch.version.cuda, cudnn, torch.cuda.device_count() if cuda else 0))'
find_python() {
  local py
  for py in ${HN_TORCH_PYTHON:-} /opt/torch/.venv/bin/python "$PACK/../native/.libtorch/python/python" \
    "$PACK/../.venv/bin/python" python3 python; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "$TORCH_PROBE" >"$WORK/torch-probe" 2>/dev/null; then
      command -v "$py"
      cat "$WORK/torch-probe"
      return 0
    fi
  done
  return 1
}

FRAGMENTS+=("$WORK/env.md")
{
  echo "## Machine"
  echo
  echo "- host: $(uname -srm), $(nproc) CPUs"
} >"$WORK/env.md"
if ! setup >"$WORK/setup.log" 2>&1; then
  note env "" "**FAILED: unpacking Deno or the npm cache.**" "" '```' "$(cat "$WORK/setup.log")" '```'
  assemble
  echo "gpu-check: set-up failed; see $REPORT" >&2
  exit 1
fi
DENO=$WORK/deno
PROBE=$(find_python) || PROBE=""
PY=$(sed -n 1p <<<"$PROBE")
TORCH_LIB=$(sed -n 2p <<<"$PROBE")
TORCH_DESC=$(sed -n 3p <<<"$PROBE")
LIB=$PACK/native/target/release/libhybridnet.so
# On CUDA the machine's torch must be the one loaded (the pack's library was linked against a
# CPU-only view elsewhere); on the CPU the library's own search path is kept when it resolves.
# Only the Deno processes get it (and their children, the PyTorch peer): coreutils must not.
DENO_LD=""
if [ -n "$TORCH_LIB" ] && { [ "$DEVICE" != cpu ] || ldd "$LIB" 2>/dev/null | grep -q 'libtorch_cpu.so => not found'; }; then
  DENO_LD=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
PRELOAD=""
export DENO_DIR=$WORK/deno-dir HOME=$WORK/home DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
{
  if command -v nvidia-smi >/dev/null; then
    echo "- GPU, driver: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
  else
    echo "- GPU, driver: no nvidia-smi on this machine"
  fi
  echo "- deno: $("$DENO" --version 2>&1 | head -n 1)"
  echo "- torch Python: ${PY:-**none with torch 2.11 found** (no PyTorch peer)}${PY:+ ($TORCH_DESC)}"
  echo "- LD_LIBRARY_PATH of the Deno processes: \`${DENO_LD:-(unset)}\`"
  echo "- set-up: $(elapsed) s"
} >>"$WORK/env.md"
assemble

# set_run: RUN=(env [LD_LIBRARY_PATH=…] [LD_PRELOAD=…] deno) for the stages (an array, not a
# function, because `timeout` executes it)
set_run() {
  RUN=(env)
  [ -n "$DENO_LD" ] && RUN+=("LD_LIBRARY_PATH=$DENO_LD")
  [ -n "$PRELOAD" ] && RUN+=("LD_PRELOAD=$PRELOAD")
  RUN+=("$DENO")
}
set_run
DENO_RUN=(run -A --cached-only --frozen --no-prompt "--config=$PACK/deno.json")

# --- 1. smoke ------------------------------------------------------------------------------------
stage smoke "$((60 - $(elapsed) / SCALE))" "${RUN[@]}" "${DENO_RUN[@]}" "$PACK/scripts/gpu-check/smoke.ts" --device "$DEVICE" --out "$WORK/smoke.md"
rc=$?
if [ $rc -eq 3 ] && [ -f "$TORCH_LIB/libtorch_cuda.so" ] && command -v nvidia-smi >/dev/null &&
  [ -z "${HN_CHECK_NO_PRELOAD:-}" ]; then
  # A driver is there, but the library found no usable CUDA device by itself. Preloading
  # libtorch_cuda.so tells a failed CUDA load in the library (issue 12, item 2) apart from a
  # missing device, and lets the later stages run.
  PRELOAD=$TORCH_LIB/libtorch_cuda.so
  set_run
  mv "$WORK/smoke.md" "$WORK/smoke-first.md"
  FRAGMENTS=("$WORK/env.md" "$WORK/smoke-first.md")
  note smoke-preload "" "**The library saw no usable CUDA device on its own; retrying with LD_PRELOAD=$PRELOAD.**" \
    "The stages below run with it: a finding to fix in the library (issue 12, item 2), not a pass."
  stage smoke "$((60 - $(elapsed) / SCALE))" "${RUN[@]}" "${DENO_RUN[@]}" "$PACK/scripts/gpu-check/smoke.ts" --device "$DEVICE" --out "$WORK/smoke.md"
  rc=$?
  STATUS=1
fi
if [ $rc -ne 0 ]; then
  note smoke "" "**The check stops here: the smoke stage failed.**"
  assemble
  echo "gpu-check: smoke stage failed; see $REPORT" >&2
  exit 1
fi

if [ -n "$SMOKE_ONLY" ]; then
  note end "" "---" "" "Smoke stage only (--smoke-only): passed in $(elapsed) s."
  assemble
  exit $STATUS
fi

# --- 2-5 ----------------------------------------------------------------------------------------
stage parity 40 "${RUN[@]}" "${DENO_RUN[@]}" "$PACK/scripts/gpu-check/parity.ts" --device "$DEVICE" --out "$WORK/parity.md"

if [ -d "$PACK/tests/gpu" ]; then
  FRAGMENTS+=("$WORK/tests.md")
  stage tests-run 50 "${RUN[@]}" test -A --no-check --cached-only --frozen --no-prompt "--config=$PACK/deno.json" "$PACK/tests/gpu/"
  {
    echo "## 3. tests/gpu (deno test)"
    echo
    echo '```'
    sed -E 's/\x1b\[[0-9;]*m//g' "$WORK/tests-run.log" | grep -E '^(ok|FAILED|error)|passed|failed|ignored|=> ' | tail -n 40
    echo '```'
  } >"$WORK/tests.md"
  assemble
else
  note tests "## 3. tests/gpu" "" "**not in this pack** (no tests/gpu/ in the repository when it was packed)."
  STATUS=1
  assemble
fi

if [ -n "$PY" ]; then
  stage bench 90 "${RUN[@]}" "${DENO_RUN[@]}" "$PACK/scripts/gpu-check/bench.ts" --device "$DEVICE" --out "$WORK/bench.md" \
    --python "$PY" --seed-model "$PACK/peer/hybridnet_seed.py"
else
  note bench "## 4. Benchmark" "" "**not run: no Python with torch 2.11 for the PyTorch peer.**"
  STATUS=1
  assemble
fi

stage train 45 "${RUN[@]}" "${DENO_RUN[@]}" "$PACK/scripts/gpu-check/train.ts" --device "$DEVICE" --out "$WORK/train.md"

note end "" "---" "" "Finished in $(elapsed) s; $([ $STATUS -eq 0 ] && echo "every stage passed" || echo "**some stage failed or was cut** (see above)")."
assemble
echo "gpu-check: report in $REPORT ($(elapsed) s)" >&2
exit $STATUS
