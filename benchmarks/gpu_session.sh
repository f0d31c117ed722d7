#!/usr/bin/env bash
# The GPU figures and tests, for a session lent a GPU machine (see docs/benchmarks.md,
# "Running the GPU figures and tests"). Each part fits one device call (at most 10 minutes):
#
#   bash benchmarks/gpu_session.sh tests models       # first call
#   bash benchmarks/gpu_session.sh pipeline           # second call
#   bash benchmarks/gpu_session.sh train              # third call
#   bash benchmarks/gpu_session.sh memory             # fourth call: largest batch at 1024 bf16, backoff cost
#
# (bench_eval.py needs dlib's face models, which do not fit a device call's 64 MiB; the pipeline
# part times the same networks and metrics.)
#
# Results (JSON and logs) go to $OUT (the device tool's folder) or ./gpu-out. Wheels the machine
# lacks (PyAV, lpips, pytorch-optimizer, facexlib, filterpy) are installed from ./.whl when it exists.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && [ ! -d /tmp/site ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH="$PYTHONPATH:/tmp/site"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))" >> "$OUT/gpu.txt" 2>&1
status=0
run() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -n 25
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "!! $name exited $rc"; status=1; }
}
for part in "$@"; do
  case $part in
    tests)    run tests 240 $PY -m pytest -q -p no:cacheprovider tests/test_device_paths.py tests/test_cuda_branches.py \
                tests/test_stylegan2.py tests/test_encoder.py ;;
    models)   run models 300 $PY benchmarks/bench_models.py --device cuda --dtype bf16 --batch 8 16 32 --json "$OUT/models.json" ;;
    pipeline) run pipeline 540 $PY benchmarks/bench_pipeline.py --device cuda --dtype bf16 --batch 16 --sizes 720 1080 \
                --models full --full-frames 192 --parts speed --oracle-faces --identity arcface-random --json "$OUT/pipeline.json" ;;
    train)    run train 300 $PY benchmarks/bench_train.py --full --batch 4 8 --out "$OUT/train.json" ;;
    memory)   run memory 420 $PY benchmarks/bench_memory.py --device cuda --dtype bf16 --size 1024 --max-batch 256 \
                --json "$OUT/memory.json" ;;
    *) echo "unknown part $part (tests models pipeline train memory)"; status=1 ;;
  esac
done
exit $status
