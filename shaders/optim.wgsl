// Optimizer updates, one invocation per parameter, with TF's update rules
// (ApplyGradientDescent, ApplyMomentum, ApplyAdam, ApplyRMSProp). The learning rate
// and Adam's beta powers are scalar tensors on the device, so schedules need no
// host round trip.

struct Params {
    n: u32,
    flag: u32,
    pad0: u32,
    pad1: u32,
    // Momentum: h0 momentum. Adam: beta1, beta2, epsilon, weight decay.
    // RMSProp: rho, momentum, epsilon.
    h0: f32,
    h1: f32,
    h2: f32,
    h3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> var_: array<f32>;
@group(0) @binding(2) var<storage, read_write> s1: array<f32>;
@group(0) @binding(3) var<storage, read_write> s2: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read> lr: array<f32>;
@group(0) @binding(6) var<storage, read> b1p: array<f32>;
@group(0) @binding(7) var<storage, read> b2p: array<f32>;

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    var_[i] = var_[i] - lr[0] * grad[i];
}

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let g = grad[i];
    let acc = s1[i] * p.h0 + g;
    s1[i] = acc;
    if (p.flag == 1u) {
        var_[i] = var_[i] - g * lr[0] - acc * p.h0 * lr[0];
    } else {
        var_[i] = var_[i] - lr[0] * acc;
    }
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let g = grad[i];
    let rate = lr[0];
    let lr_t = rate * sqrt(1.0 - b2p[0]) / (1.0 - b1p[0]);
    let m = s1[i] + (g - s1[i]) * (1.0 - p.h0);
    let v = s2[i] + (g * g - s2[i]) * (1.0 - p.h1);
    s1[i] = m;
    s2[i] = v;
    let w = var_[i];
    var_[i] = w - rate * p.h3 * w - lr_t * m / (sqrt(v) + p.h2);
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let g = grad[i];
    let ms = s1[i] + (g * g - s1[i]) * (1.0 - p.h0);
    s1[i] = ms;
    let mom = s2[i] * p.h1 + lr[0] * g / sqrt(ms + p.h2);
    s2[i] = mom;
    var_[i] = var_[i] - mom;
}
