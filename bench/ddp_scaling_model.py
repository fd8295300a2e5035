#!/usr/bin/env python3
"""Data-parallel scaling on paper (issue 15): step time of DistributedDataParallel on N machines
joined by a network, from a measured one-machine step time and the gradient's size.

Model (assumptions, stated in docs/distributed.md):
  - one process per machine (2 cores, 2 threads), the same per-machine batch at every N (weak
    scaling), so the compute time per step T_c does not change with N;
  - gradients are float32, B = 4 * parameters bytes, all-reduced with a ring algorithm:
    T_ar = 2 (N - 1) / N * B / bandwidth + 2 (N - 1) * latency
    (bandwidth: the link's nominal rate times an efficiency; latency: one message step);
  - no overlap: T = T_c + T_ar; full overlap (all but the last bucket hidden behind backward,
    which is about 2/3 of T_c): T = T_c + max(0, T_ar - hidden * backward) with the measured
    hidden fraction.

  /usr/bin/python3 bench/ddp_scaling_model.py --model cnn-bn 421834 0.0261 64 \\
      --model resnet50 23519690 4.0 64 --hidden 0.9
"""
import argparse


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs=4, action="append", metavar=("NAME", "PARAMS", "STEP_S", "BATCH"),
                    required=True, help="name, parameter count, measured one-machine step seconds, batch")
    ap.add_argument("--gbit", type=float, default=10.0, help="link rate, Gb/s (default 10)")
    ap.add_argument("--efficiency", type=float, default=0.9, help="share of the link rate reached (default 0.9)")
    ap.add_argument("--latency-us", type=float, default=30.0, help="per message step, microseconds (default 30)")
    ap.add_argument("--hidden", type=float, default=0.9, help="share of all-reduce hidden behind backward")
    ap.add_argument("--backward-share", type=float, default=2 / 3, help="backward's share of a step")
    ap.add_argument("--machines", type=int, nargs="+", default=[1, 8, 64])
    a = ap.parse_args()
    bw = a.gbit * 1e9 / 8 * a.efficiency
    lat = a.latency_us * 1e-6
    print(f"ring all-reduce, {a.gbit:g} Gb/s at {a.efficiency:.0%} = {bw / 1e9:.3f} GB/s, {a.latency_us:g} us per step; "
          f"hidden {a.hidden:.0%} of the all-reduce behind backward ({a.backward_share:.0%} of a step)")
    print("| model | machines | MB per step | all-reduce ms | compute ms | step ms, no overlap | efficiency | "
          "step ms, overlap | efficiency | samples/s, overlap |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, params, step_s, batch in a.model:
        params, step_s, batch = int(params), float(step_s), int(batch)
        mb = 4 * params / 1e6
        for n in a.machines:
            t_ar = 0.0 if n == 1 else 2 * (n - 1) / n * 4 * params / bw + 2 * (n - 1) * lat
            plain = step_s + t_ar
            overlap = step_s + max(0.0, t_ar - min(a.hidden * t_ar, a.backward_share * step_s))
            print(f"| {name} | {n} | {mb:.1f} | {t_ar * 1e3:.2f} | {step_s * 1e3:.1f} | {plain * 1e3:.1f} | "
                  f"{step_s / plain:.1%} | {overlap * 1e3:.1f} | {step_s / overlap:.1%} | {n * batch / overlap:,.0f} |")


if __name__ == "__main__":
    main()
