"""Lists and loads checkpoints wgtrain wrote with TensorFlow (not run in CI).

    cargo run --release --example checkpoint_for_tf -- /tmp/wgckpt
    python tools/tf_check_checkpoint.py /tmp/wgckpt
"""
import sys
import numpy as np, tensorflow as tf
d = sys.argv[1]
print("tensorflow", tf.__version__)
r = tf.train.load_checkpoint(d + "/bundle")
for name, shape in sorted(tf.train.list_variables(d + "/bundle")):
    v = r.get_tensor(name)
    dt = r.get_variable_to_dtype_map()[name]
    summary = v if v.size <= 6 else f"sum={float(np.sum(v.astype(np.float64)))} first={v.flat[:3]}"
    print(f"{name:6s} {dt.name:8s} {shape} {summary}")
latest = tf.train.latest_checkpoint(d + "/train")
print("latest_checkpoint:", latest)
st = tf.train.get_checkpoint_state(d + "/train")
print("state:", st.model_checkpoint_path, list(st.all_model_checkpoint_paths))
r2 = tf.train.load_checkpoint(latest)
for name, shape in tf.train.list_variables(latest):
    print(f"{name:14s} {r2.get_variable_to_dtype_map()[name].name:8s} {shape} {r2.get_tensor(name).tolist()}")
# Load into TF1 variables with a Saver (graph mode), as TF would restore its own.
tf.compat.v1.disable_eager_execution()
g = tf.Graph()
with g.as_default():
    k = tf.compat.v1.get_variable("dense/kernel", shape=[3, 4])
    b = tf.compat.v1.get_variable("dense/bias", shape=[4])
    gs = tf.compat.v1.train.get_or_create_global_step()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as s:
        saver.restore(s, latest)
        print("restored by tf.compat.v1.train.Saver: step", s.run(gs), "kernel row 2", s.run(k)[2].tolist(), "bias", s.run(b).tolist())
