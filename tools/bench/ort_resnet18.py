"""ONNX Runtime's ResNet18 (fc removed) throughput on this machine: the yardstick of the CPU
embedder (the fastest CPU peer a user can pick).

Called by `cargo xtask bench` when DRIFT_BENCH_ORT_PYTHON names a Python with the packages of
tools/bench/requirements-ort.txt. Prints one JSON line. The graph is torchvision's ResNet18
architecture built directly with onnx.helper, with BatchNorm already folded into each
convolution (what ORT's optimizer does to an exported model anyway) and seeded random weights:
weights do not change the speed, and no torch install or download is needed.

    python tools/bench/ort_resnet18.py --threads 2 --batch 32 --batches 6

With --profile, it prints ORT's time per node instead (mean ms per batch, in graph order), the
per-layer side of the embedder's profile (`examples/embed_profile.rs`).
"""

import argparse
import json
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


class Graph:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int, relu: bool) -> str:
        w, b, y = self.name("w"), self.name("b"), self.name("conv")
        weight = self.rng.normal(0, (2.0 / (c_in * k * k)) ** 0.5, (c_out, c_in, k, k))
        self.initializers += [
            numpy_helper.from_array(weight.astype(np.float32), w),
            numpy_helper.from_array(np.zeros(c_out, np.float32), b),
        ]
        pad = k // 2
        self.nodes.append(helper.make_node(
            "Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
            pads=[pad] * 4))
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        y = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    def block(self, x: str, c_in: int, c_out: int, stride: int) -> str:
        y = self.conv(x, c_in, c_out, 3, stride, relu=True)
        y = self.conv(y, c_out, c_out, 3, 1, relu=False)
        shortcut = x if stride == 1 and c_in == c_out else self.conv(x, c_in, c_out, 1, stride,
                                                                       relu=False)
        s = self.name("add")
        self.nodes.append(helper.make_node("Add", [y, shortcut], [s]))
        return self.relu(s)


def resnet18(batch: int) -> onnx.ModelProto:
    g = Graph(seed=18)
    x = g.conv("input", 3, 64, 7, 2, relu=True)
    pooled = g.name("pool")
    g.nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1]))
    x = pooled
    c = 64
    for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        x = g.block(x, c, c_out, stride)
        x = g.block(x, c_out, c_out, 1)
        c = c_out
    gap = g.name("gap")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    g.nodes.append(helper.make_node("Flatten", [gap], ["features"], axis=1))
    graph = helper.make_graph(
        g.nodes, "resnet18_features",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, 512])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def print_profile(path: str, runs: int) -> None:
    """Mean time per node and run from ORT's profile, nodes in the order they first ran."""
    with open(path) as file:
        events = json.load(file)
    totals: dict[str, list] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        entry = totals.setdefault(name, [event["args"].get("op_name", "?"), 0.0])
        entry[1] += event["dur"] / 1e3
    total = 0.0
    for name, (op, ms) in totals.items():
        total += ms / runs
        print(f"{op:>22} {name:>40}: {ms / runs:7.1f} ms")
    print(f"{'total':>63}: {total:7.1f} ms per batch")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.enable_profiling = args.profile
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(resnet18(args.batch).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((args.batch, 3, 224, 224), dtype=np.float32)
    session.run(None, {"input": x})  # warm-up
    rates = []
    for _ in range(args.batches):
        started = time.perf_counter()
        session.run(None, {"input": x})
        rates.append(args.batch / (time.perf_counter() - started))
    rates.sort()
    if args.profile:
        print_profile(session.end_profiling(), args.batches + 1)
        return
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "images_per_s": rates[len(rates) // 2],
    }))


if __name__ == "__main__":
    main()
