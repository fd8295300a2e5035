#!/usr/bin/env bash
# End-to-end checks of tapegrad-train on a tiny generated IDX data set: a 52-step smoke run whose
# training loss falls, the output files, --resume reproducing an uninterrupted run's weights
# byte for byte, evaluate, and bad flags rejected with a message and exit code 2.
# Usage: tests/cli_test.sh path/to/tapegrad-train
set -euo pipefail
train=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Four IDX files (gzip), 64 training and 32 test images of 28x28 whose class sets a bright row.
python3 "$(dirname "$0")/make_idx_data.py" "$work/data"

common=(--model mlp --batch-size 16 --optimizer sgd --lr 0.05 --scheduler none --threads 1 --seed 3 --quiet
        --data "$work/data")

# 13 epochs x 4 batches = 52 steps; the training loss must fall.
"$train" "${common[@]}" --epochs 13 --out "$work/smoke" > "$work/smoke.log"
head -1 "$work/smoke/metrics.csv" | grep -qx "epoch,train_loss,train_acc,test_loss,test_acc,test_top5,seconds,samples_per_s" \
  || fail "metrics.csv header: $(head -1 "$work/smoke/metrics.csv")"
[[ $(wc -l < "$work/smoke/metrics.csv") -eq 14 ]] || fail "metrics.csv should have 13 epochs"
first=$(sed -n 2p "$work/smoke/metrics.csv" | cut -d, -f2)
last=$(sed -n 14p "$work/smoke/metrics.csv" | cut -d, -f2)
python3 -c "import sys; sys.exit(0 if float('$last') < 0.5 * float('$first') else 1)" \
  || fail "training loss did not fall: $first -> $last"
for f in curves.svg confusion_matrix.csv checkpoint.safetensors model.safetensors; do
  [[ -s "$work/smoke/$f" ]] || fail "missing output $f"
done
grep -q "test accuracy" "$work/smoke.log" || fail "no final test accuracy printed"

# Interrupted after epoch 2, resumed to epoch 4: identical weights to an uninterrupted 4 epochs.
"$train" "${common[@]}" --epochs 4 --out "$work/full" > /dev/null
"$train" "${common[@]}" --epochs 2 --out "$work/part" > /dev/null
"$train" "${common[@]}" --epochs 4 --out "$work/part" --resume "$work/part/checkpoint.safetensors" > /dev/null
cmp -s "$work/full/model.safetensors" "$work/part/model.safetensors" || fail "resumed weights differ"
[[ $(wc -l < "$work/part/metrics.csv") -eq 5 ]] || fail "resumed metrics.csv should list 4 epochs"

# --config <out>/config.toml repeats a run: the same weights byte for byte and the same metrics;
# a flag on the command line overrides the file (here --out); the file holds every flag.
[[ -s "$work/full/config.toml" ]] || fail "no config.toml in --out"
for key in model epochs batch-size optimizer lr scheduler nesterov seed data limit; do
  grep -q "^$key=" "$work/full/config.toml" || fail "config.toml lacks $key: $(cat "$work/full/config.toml")"
done
"$train" --config "$work/full/config.toml" --out "$work/again" > /dev/null
cmp -s "$work/full/model.safetensors" "$work/again/model.safetensors" || fail "--config config.toml: other weights"
diff <(cut -d, -f1-6 "$work/full/metrics.csv") <(cut -d, -f1-6 "$work/again/metrics.csv") > /dev/null \
  || fail "--config config.toml: other metrics"
grep -q '^out="'"$work"'/again"$' "$work/again/config.toml" || fail "--out did not override the file's out"

# Every schedule: a finished 1-epoch run resumed with --epochs 3 is planned for 3 epochs and ends
# where a straight 3-epoch run ends (same weights byte for byte, same metrics apart from timing).
for sched in none step exp inv-time cosine; do
  run=("${common[@]/none/$sched}")
  "$train" "${run[@]}" --epochs 3 --out "$work/s-$sched" > /dev/null
  "$train" "${run[@]}" --epochs 1 --out "$work/r-$sched" > /dev/null
  "$train" "${run[@]}" --epochs 3 --out "$work/r-$sched" --resume "$work/r-$sched/checkpoint.safetensors" \
    > "$work/r-$sched.log"
  cmp -s "$work/s-$sched/model.safetensors" "$work/r-$sched/model.safetensors" \
    || fail "--scheduler $sched: weights after resuming 1 -> 3 epochs differ from a straight 3-epoch run"
  diff <(cut -d, -f1-6 "$work/s-$sched/metrics.csv") <(cut -d, -f1-6 "$work/r-$sched/metrics.csv") > /dev/null \
    || fail "--scheduler $sched: resumed metrics.csv differs from the straight run's"
  grep -q -- "--epochs 3 (the checkpoint's run had 1)" "$work/r-$sched.log" || fail "--scheduler $sched: new horizon not said"
done
# A horizon that changes the rates of epochs already done is said (cosine planned for 2, then 4).
"$train" "${run[@]}" --epochs 2 --out "$work/h" > /dev/null
"$train" "${run[@]}" --epochs 4 --out "$work/h" --resume "$work/h/checkpoint.safetensors" > "$work/h.log"
grep -q "other learning rates" "$work/h.log" || fail "a re-planned cosine schedule was not reported"
# A changed learning rate is applied and said; the fixed flags are usage errors naming the flag.
"$train" "${run[@]}" --epochs 4 --lr 0.01 --out "$work/h2" --resume "$work/r-cosine/checkpoint.safetensors" > "$work/h2.log"
grep -q -- "--lr 0.01 (the checkpoint's run had 0.05), applied from epoch 4" "$work/h2.log" || fail "changed --lr not said: $(cat "$work/h2.log")"
for flag in "--batch-size 8" "--seed 4" "--optimizer adam" "--model lenet"; do
  set +e
  out=$("$train" "${run[@]}" --epochs 4 $flag --out "$work/h3" --resume "$work/r-cosine/checkpoint.safetensors" 2>&1)
  rc=$?
  set -e
  [[ $rc -eq 2 ]] || fail "resume with $flag exited $rc, expected 2"
  grep -q -- "${flag%% *} cannot change on resume" <<< "$out" || fail "resume with $flag said '$out'"
done

# The zoo: --model list names every model with its parameter count; a small-input zoo model
# trains an epoch on the tiny set and its saved weights evaluate.
"$train" --model list > "$work/list.txt"
for name in mlp cnn-bn alexnet vgg11_bn vgg16_bn googlenet resnet18 resnet34 resnet50 densenet121 densenet-bc-100; do
  grep -Eq "^$name +[0-9,]+ parameters$" "$work/list.txt" || fail "--model list lacks $name: $(cat "$work/list.txt")"
done
"$train" "${common[@]/mlp/densenet-bc-40}" --epochs 1 --limit 16 --batch-size 8 --out "$work/zoo" > /dev/null
[[ $(wc -l < "$work/zoo/metrics.csv") -eq 2 ]] || fail "densenet-bc-40: metrics.csv should list 1 epoch"
"$train" evaluate --model densenet-bc-40 --weights "$work/zoo/model.safetensors" --data "$work/data" | grep -q "test accuracy" \
  || fail "evaluate of densenet-bc-40 printed no accuracy"

"$train" evaluate --model mlp --weights "$work/full/model.safetensors" --data "$work/data" | grep -q "test accuracy" \
  || fail "evaluate printed no accuracy"

# Bad flags: exit code 2 and a message naming the flag.
expect_usage_error() {
  local want=$1; shift
  set +e
  out=$("$train" "$@" 2>&1)
  rc=$?
  set -e
  [[ $rc -eq 2 ]] || fail "'$*' exited $rc, expected 2"
  grep -q -- "$want" <<< "$out" || fail "'$*' said '$out', expected it to mention $want"
}
expect_usage_error "--epochs" --epochs 0
expect_usage_error "--model" --model resnet-huge
expect_usage_error "--lr" --lr abc
expect_usage_error "--optimizer" --optimizer lion
expect_usage_error "unknown option" --frobnicate
expect_usage_error "did you mean --epochs" --epoch 3
expect_usage_error "--model needs a value" --model
printf 'epochs = 2\nlearning-rate = 0.1\n' > "$work/bad.toml"
expect_usage_error "bad.toml: unknown key 'learning-rate'" --config "$work/bad.toml"
printf 'epochs = "two"\n' > "$work/bad.toml"
expect_usage_error "bad.toml: --epochs expects a number, got 'two'" --config "$work/bad.toml"
expect_usage_error "--config: '$work/none.toml' is not a readable file" --config "$work/none.toml"
"$train" --help | grep -q -- "--resume" || fail "--help lacks --resume"
# --dot: the first training step's graph, as Graphviz DOT, with cnn-bn's fused ops and named leaves.
"$train" "${common[@]}" --model cnn-bn --epochs 1 --limit 32 --out "$work/dot" --dot "$work/step.dot" >/dev/null
head -1 "$work/step.dot" | grep -q '^digraph tape {' || fail "--dot: not a digraph"
for want in 'label="fma_relu' 'label="window_max' 'label="conv' 'label="0.weight' 'label="12.bias'; do
  grep -q "$want" "$work/step.dot" || fail "--dot: no $want in the graph"
done

# The same seed gives the same bytes on any thread count: cnn-bn (conv, batch norm, pooling,
# the default cosine schedule) trained for two epochs with 1, 2 and 3 threads.
for t in 1 2 3; do
  "$train" --model cnn-bn --batch-size 16 --optimizer sgd --lr 0.05 --seed 3 --quiet --data "$work/data" \
    --threads $t --epochs 2 --out "$work/threads-$t" >/dev/null 2>&1 || fail "--threads $t: the run failed"
done
for t in 2 3; do
  cmp -s "$work/threads-1/model.safetensors" "$work/threads-$t/model.safetensors" || fail "--threads $t: weights differ from 1 thread"
  cmp -s <(cut -d, -f1-6 "$work/threads-1/metrics.csv") <(cut -d, -f1-6 "$work/threads-$t/metrics.csv") \
    || fail "--threads $t: losses or accuracies differ from 1 thread"  # (columns 7-8 are timings)
done

# A corrupt data directory is an error naming the file, not a crash.
: > "$work/data/t10k-labels-idx1-ubyte.gz"
set +e
out=$("$train" "${common[@]}" --epochs 1 --out "$work/bad" 2>&1); rc=$?
set -e
[[ $rc -eq 1 ]] || fail "corrupt data: exit $rc"
grep -q "t10k-labels" <<< "$out" || fail "corrupt data: message '$out' does not name the file"
echo "cli: all checks passed"
