#!/usr/bin/env python3
"""External judge for edgenet's tests: the onnx checker and onnxruntime, on the same files.

usage:
  ort_judge.py check MODEL.onnx
      onnx.checker.check_model(model, full_check=True); exits non-zero with the reason.
  ort_judge.py run MODEL.onnx INPUT.f32 OUTPUT.f32
      Runs MODEL in onnxruntime (CPU, one thread) on INPUT (raw little-endian float32 with the
      model's input shape) and writes the first output as raw little-endian float32.
  ort_judge.py run-tensors MODEL.onnx INPUT.f32 OUTDIR NAME...
      Like run, but makes the named intermediate tensors graph outputs and writes each, cast
      to float32, to OUTDIR/<index>.f32 in the order given.
  ort_judge.py version
      Prints the onnx and onnxruntime versions.
"""
import sys


def check(path):
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print("ok")


def session_options(ort):
    """One intra-op thread. EDGENET_ORT_LITERAL=1 disables onnxruntime's graph optimisations,
    so that it executes the file's ops as written: by default it fuses DequantizeLinear → Add →
    QuantizeLinear into its own QLinearAdd, whose rounding differs from the ops it replaces."""
    import os
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if os.environ.get("EDGENET_ORT_LITERAL") == "1":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def run(path, inp, out):
    import numpy as np
    import onnxruntime as ort
    opts = session_options(ort)
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    first = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in first.shape]
    x = np.fromfile(inp, dtype="<f4").reshape(shape)
    y = sess.run(None, {first.name: x})[0]
    np.asarray(y, dtype="<f4").tofile(out)


def run_tensors(path, inp, outdir, names):
    import os
    import numpy as np
    import onnx
    import onnxruntime as ort
    model = onnx.load(path)
    existing = {o.name for o in model.graph.output}
    for n in names:
        if n not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=n))
    opts = session_options(ort)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    first = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in first.shape]
    x = np.fromfile(inp, dtype="<f4").reshape(shape)
    for i, y in enumerate(sess.run(names, {first.name: x})):
        np.asarray(y, dtype="<f4").tofile(os.path.join(outdir, f"{i}.f32"))


def main(argv):
    if len(argv) >= 2 and argv[1] == "version":
        import onnx
        import onnxruntime
        print(f"onnx {onnx.__version__} onnxruntime {onnxruntime.__version__}")
    elif len(argv) == 3 and argv[1] == "check":
        check(argv[2])
    elif len(argv) >= 6 and argv[1] == "run-tensors":
        run_tensors(argv[2], argv[3], argv[4], argv[5:])
    elif len(argv) == 5 and argv[1] == "run":
        run(argv[2], argv[3], argv[4])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
