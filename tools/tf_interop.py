"""TensorFlow and TensorBoard read what wgtrain wrote, as their own (run in CI).

    cargo run --release --example tf_interop -- DIR
    python tools/tf_interop.py DIR

For each model directory (cnn, mlp) of DIR:
  1. tf.train lists, loads and restores (tf.compat.v1.train.Saver) the latest checkpoint;
  2. import_meta_graph of its .meta, restore with the imported saver, the loss on the
     fixed batch equals wgtrain's within 1e-5 relative, and 10 runs of the imported
     train op give wgtrain's losses within 1e-4 relative and its variables after them;
  3. import_graph_def of graph.pbtxt;
  4. TensorBoard's EventAccumulator loads every tag of every plugin the run wrote.
Prints one line per check; exits 1 on the first failure.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

tf.compat.v1.disable_eager_execution()


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def close(what, got, want, rtol):
    """The largest difference relative to the largest magnitude of `want`."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.max(np.abs(want)) if want.size else 0.0, 1e-30)
    err = np.max(np.abs(got - want)) / scale if want.size else 0.0
    if not np.all(np.isfinite(got)) or err > rtol:
        fail(f"{what}: relative error {err:.3g} > {rtol} (got {got.ravel()[:4]}, want {want.ravel()[:4]})")
    return err


def check_checkpoint(d, prefix):
    names = dict(tf.train.list_variables(prefix))
    reader = tf.train.load_checkpoint(prefix)
    if tf.train.latest_checkpoint(d) != prefix:
        fail(f"latest_checkpoint({d}) = {tf.train.latest_checkpoint(d)}, want {prefix}")
    for n in names:
        reader.get_tensor(n)
    g = tf.Graph()
    with g.as_default():
        dtypes = reader.get_variable_to_dtype_map()
        vs = [tf.compat.v1.Variable(tf.zeros(names[n], dtypes[n]), name=n) for n in sorted(names)]
        saver = tf.compat.v1.train.Saver({n: v for n, v in zip(sorted(names), vs)})
        with tf.compat.v1.Session() as s:
            saver.restore(s, prefix)
            for n, v in zip(sorted(names), vs):
                if not np.array_equal(s.run(v), reader.get_tensor(n)):
                    fail(f"{n} restored differs from the checkpoint")
    print(f"ok   checkpoint: TF lists, loads and restores {len(names)} variables of {prefix}")


def check_meta_graph(d, art):
    x = np.asarray(art["x"], np.float32).reshape(art["x_shape"])
    y = np.asarray(art["y"], np.int32)
    g = tf.Graph()
    with g.as_default():
        saver = tf.compat.v1.train.import_meta_graph(art["checkpoint"] + ".meta")
        feeds = {art["x_name"] + ":0": x, art["y_name"] + ":0": y}
        # Found as TF's tools find them: the collections and get_global_step.
        (loss,) = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)
        (train_op,) = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAIN_OP)
        step = tf.compat.v1.train.get_global_step()
        train_name = getattr(train_op, "op", train_op).name
        if (loss.op.name, train_name, step.op.name) != (art["loss"], art["train_op"], art["global_step"]):
            fail(f"collections name {loss.op.name}, {train_name}, {step.op.name}; wgtrain ran "
                 f"{art['loss']}, {art['train_op']}, {art['global_step']}")
        with tf.compat.v1.Session() as s:
            saver.restore(s, art["checkpoint"])
            e0 = close("loss on the fixed batch", s.run(loss, feeds), art["loss0"], 1e-5)
            start = s.run(step)
            losses = [s.run([loss, train_op], feeds)[0] for _ in art["losses"]]
            if s.run(step) != start + len(losses):
                fail(f"the global step went from {start} to {s.run(step)} in {len(losses)} steps")
            e1 = close("losses of 10 train-op runs", losses, art["losses"], 1e-4)
            after = tf.train.load_checkpoint(art["after"])
            worst = 0.0
            for v in tf.compat.v1.global_variables():
                name = v.op.name
                want = after.get_tensor(name)
                worst = max(worst, close(f"{name} after 10 steps", s.run(v), want, 1e-4))
            # The imported saver writes a checkpoint TF reads back.
            out = saver.save(s, os.path.join(d, "tf_saved", "model.ckpt"))
            tf.train.load_checkpoint(out)
    print(f"ok   import_meta_graph: restored, loss rel. error {e0:.2g}; 10 train-op runs: losses {e1:.2g}, "
          f"variables {worst:.2g}; the imported saver saves")


def check_graph_def(d):
    gd = tf.compat.v1.GraphDef()
    text_format.Merge(open(os.path.join(d, "graph.pbtxt")).read(), gd)
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(gd, name="")
    print(f"ok   import_graph_def: graph.pbtxt, {len(g.get_operations())} ops")


def check_ops(d):
    """TF imports the ops graph and computes what wgtrain did, forward and gradients."""
    art = json.load(open(os.path.join(d, "ops.json")))
    gd = tf.compat.v1.GraphDef()
    text_format.Merge(open(os.path.join(d, "graph.pbtxt")).read(), gd)
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(gd, name="")
        feeds = {f"{k}:0": np.array(v["values"], np.float32).reshape(v["shape"])
                 for k, v in art["feeds"].items()}
        names = [f["name"] for f in art["fetches"]]
        with tf.compat.v1.Session(graph=g) as s:
            got = s.run([f"{n}:0" for n in names], feeds)
    ops = sorted({n.op for n in gd.node})
    for want, have in zip(art["fetches"], got):
        close(want["name"], have.reshape(-1), np.array(want["values"], np.float32), 1e-4)
    print(f"ok   ops graph: TF computes the {len(names)} fetches wgtrain did ({', '.join(ops)})")


def check_events(d):
    acc = event_accumulator.EventAccumulator(d, size_guidance={k: 0 for k in (
        event_accumulator.SCALARS, event_accumulator.HISTOGRAMS, event_accumulator.IMAGES,
        event_accumulator.TENSORS, event_accumulator.GRAPH, event_accumulator.META_GRAPH)})
    acc.Reload()
    tags = acc.Tags()
    # What the run wrote, read directly from the files.
    written = {}
    for f in sorted(os.listdir(d)):
        if not f.startswith("events.out.tfevents"):
            continue
        for ev in tf.compat.v1.train.summary_iterator(os.path.join(d, f)):
            for v in ev.summary.value:
                plugin = v.metadata.plugin_data.plugin_name or v.WhichOneof("value")
                written.setdefault(plugin, set()).add(v.tag)
    seen = set(tags.get("scalars", [])) | set(tags.get("histograms", [])) | set(tags.get("images", [])) \
        | set(tags.get("tensors", []))
    for plugin, want in written.items():
        missing = want - seen
        if missing:
            fail(f"EventAccumulator misses {plugin} tags {sorted(missing)}")
    if not tags.get("graph"):
        fail("EventAccumulator sees no graph")
    for t in tags.get("scalars", []):
        acc.Scalars(t)
    for t in tags.get("histograms", []):
        acc.Histograms(t)
    for t in tags.get("images", []):
        acc.Images(t)
    for t in tags.get("tensors", []):
        acc.Tensors(t)
    acc.Graph()
    counts = ", ".join(f"{p}: {len(w)}" for p, w in sorted(written.items()))
    print(f"ok   TensorBoard EventAccumulator: every tag ({counts}) and the graph")


def main():
    root = sys.argv[1]
    print("tensorflow", tf.__version__)
    print("-- ops")
    check_ops(os.path.join(root, "ops"))
    for model in ("cnn", "mlp"):
        d = os.path.join(root, model)
        art = json.load(open(os.path.join(d, "interop.json")))
        print(f"-- {model}")
        check_checkpoint(d, art["checkpoint"])
        check_meta_graph(d, art)
        check_graph_def(d)
        check_events(d)
    print("TF interop: all checks passed")


if __name__ == "__main__":
    main()
