#!/usr/bin/env bash
# The GPU figures, in one run of about 4-6 minutes, on a machine with CUDA PyTorch and no network.
#
#   OUT=/some/folder bash bench/gpu_check.sh          # from the repository root
#
# Needs there: Python >= 3.10 with torch (CUDA), numpy, scipy, scikit-learn, safetensors, PyYAML,
# pyarrow, matplotlib. The rest comes from the folder .whl/ of the repository (the lines of
# bench/gpu_wheels.txt make it): SimpleITK, MONAI (training), tqdm, skops and pyradiomics (its
# source, compiled here: gcc and the Python headers are needed; without them the classification
# check is skipped and summary.txt says why), installed without touching the
# machine's packages, into /tmp/bom_gpu_packages (on PYTHONPATH). Nothing is downloaded.
#
# Writes to $OUT (default ./gpu_out): summary.txt (what to quote), gpu_check.log (everything),
# environment.txt, bench_deep.txt, classify_cpu/ and classify_cuda/ (results.json of each) and
# classify_check.json. Steps:
#   1. the GPU, the driver, PyTorch and its CUDA;
#   2. bench/bench_deep.py on CUDA: the study BasicNet's deep features of one lesion (float32
#      and float16 autocast) and of a patient's 5 lesions, and study-preset training epochs with
#      and without mixed precision, on a 40-patient synthetic cohort;
#   3. `bone-oligomet classify` on the demo patient (synthetic seed 9, its generator's lesion
#      masks) with --device cpu and --device cuda: every probability must agree within 1e-4.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/gpu_out}
PYTHON=${PYTHON:-python3}
TARGET=${TARGET:-/tmp/bom_gpu_packages}
WHEELS=$ROOT/.whl
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
started=$(date +%s)
cd "$ROOT"
export PYTHONPATH=$ROOT
export XDG_CACHE_HOME=$OUT/cache   # the bundle's reference check runs here, not from a cache

# --- 1. environment -----------------------------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0]); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); \
print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
  nproc
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"
say "GPU: $(grep '^device' "$OUT/environment.txt" | cut -d' ' -f2-)"
say "$(grep '^torch' "$OUT/environment.txt")"

# --- install from .whl/ --------------------------------------------------------------------------
if [ ! -d "$WHEELS" ]; then
  say "no .whl/ folder: run the lines of bench/gpu_wheels.txt first"; exit 2
fi
# Into a folder of their own on PYTHONPATH (pip --target, no dependencies resolved: torch, numpy,
# scipy and scikit-learn are the machine's); only what does not import already.
mkdir -p "$TARGET"
export PYTHONPATH=$ROOT:$TARGET
PIP="$PYTHON -m pip install --quiet --no-index --no-deps --find-links $WHEELS --target $TARGET"
missing() {  # the packages (name:module) whose module does not import
  for pair in "$@"; do
    "$PYTHON" -c "import ${pair#*:}" 2>/dev/null || echo "${pair%%:*}"
  done
}
need=$(missing setuptools:setuptools)
[ -n "$need" ] && $PIP $need
need=$(missing SimpleITK:SimpleITK monai:monai tqdm:tqdm skops:skops prettytable:prettytable \
  wcwidth:wcwidth)
if [ -n "$need" ] && ! $PIP $need; then
  say "installing $need from .whl/ failed"; exit 2
fi
CLASSIFY=yes
need=$(missing PyWavelets:pywt pykwalify:pykwalify ruamel.yaml:ruamel.yaml \
  python-dateutil:dateutil six:six docopt:docopt)
# pyradiomics' setup.py imports the versioneer.py beside it: built from its unpacked source
SOURCE=$TARGET.src/pyradiomics_bhklab-3.1.4
rm -rf "$TARGET.src" && mkdir -p "$TARGET.src"
tar xzf "$WHEELS"/pyradiomics_bhklab-3.1.4-nodata.tar.gz -C "$TARGET.src"
if ! { [ -z "$need" ] || $PIP --no-build-isolation $need; } \
  || ! PYTHONPATH=$SOURCE:$PYTHONPATH $PIP --no-build-isolation "$SOURCE" \
    > "$OUT/pyradiomics_build.log" 2>&1; then
  CLASSIFY="no: pyradiomics did not build here (see pyradiomics_build.log)"
fi
"$PYTHON" -c "import radiomics._cmatrices, SimpleITK, monai, skops.io" 2>/dev/null \
  || { [ "$CLASSIFY" = yes ] && CLASSIFY="no: pyradiomics does not import after its build"; }
PY=$PYTHON
say "installed in $(( $(date +%s) - started )) s; classification check: $CLASSIFY"

# --- 2. deep branch on CUDA ----------------------------------------------------------------------
timeout 300 $PY bench/bench_deep.py --patients 40 --workers 8 --presets study --epochs 2 \
  --threads "$(nproc)" --repeat 7 > "$OUT/bench_deep.txt" 2>&1
status=$?
cat "$OUT/bench_deep.txt"
say "bench_deep.py (exit $status):"
grep -E "^(torch|BasicNet|features|study|tiny)" "$OUT/bench_deep.txt" | sed 's/^/  /' | tee -a "$SUMMARY" >/dev/null

# --- 3. classify, CPU against CUDA ---------------------------------------------------------------
if [ "$CLASSIFY" = yes ]; then
  timeout 240 $PY - "$OUT" <<'PYTHON'
import json, subprocess, sys, time
from pathlib import Path

from BoneOligoMetLib.synthetic.phantom import generate_patient, write_patient
from BoneOligoMetLib.synthetic.phantom.demo import DEMO_SEED

out = Path(sys.argv[1])
patient = generate_patient(DEMO_SEED, "small", patient_id="DEMO0001")
write_patient(patient, out / "demo_patient")
folder = out / "demo_patient"
seed = ",".join(f"{v:.2f}" for v in patient.liver_seed_lps_mm)
record = {"lesions": len(patient.lesions)}
probabilities = {}
for device in ("cpu", "cuda"):
    command = [
        sys.executable, "-m", "BoneOligoMetLib", "classify", "--ct", str(folder / "ct.nii.gz"),
        "--pet", str(folder / "suv.nii.gz"), "--lesions", str(folder / "lesions.nii.gz"),
        "--clinical", f"age={patient.clinical.age_years}",
        "--clinical", f"subtype={patient.clinical.subtype}", f"--liver-seed={seed}",
        "--device", device, "--no-png", "--out", str(out / f"classify_{device}"),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    record[f"{device}_seconds"] = round(time.perf_counter() - started, 2)
    record[f"{device}_exit"] = done.returncode
    print(done.stdout[-3000:], done.stderr[-3000:])
    if done.returncode == 0:
        rows = json.loads((out / f"classify_{device}" / "results.json").read_text())["lesions"]
        probabilities[device] = {r["lesion_label"]: r["probability"] for r in rows}
        record[f"{device}_device"] = json.loads(
            (out / f"classify_{device}" / "results.json").read_text())["device"]
if len(probabilities) == 2:
    cpu, cuda = probabilities["cpu"], probabilities["cuda"]
    numbers = [k for k in cpu if not isinstance(cpu[k], str)]
    differences = {k: abs(cpu[k] - cuda[k]) for k in numbers}
    record.update(
        cpu=cpu, cuda=cuda, largest_difference=max(differences.values(), default=0.0),
        same_lesions=sorted(cpu) == sorted(cuda),
        same_verdicts=all(isinstance(cuda[k], str) == isinstance(cpu[k], str) for k in cpu),
    )
    record["agree_within_1e-4"] = bool(
        record["same_lesions"] and record["same_verdicts"] and record["largest_difference"] <= 1e-4
    )
(out / "classify_check.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
print(json.dumps(record, indent=1, default=str))
PYTHON
  status=$?
  say "classify on the demo patient (exit $status): $(tr -d '\n' < "$OUT/classify_check.json" 2>/dev/null | tr -s ' ')"
else
  say "classify on the demo patient: skipped ($CLASSIFY)"
fi
say "total $(( $(date +%s) - started )) s"
