// Optimizer updates, one invocation per parameter, with TF's update rules
// (ApplyGradientDescent, ApplyMomentum, ApplyAdam, ApplyRMSProp). The learning rate
// and Adam's beta powers are scalar tensors on the device, so schedules need no
// host round trip.
//
// The `*_fused` entry points update a whole parameter arena and also do the step's
// scalar bookkeeping once, in invocation 0, in `book` (a buffer holding the group's
// beta powers and global step): beta_power *= beta (bit 0 of `bits`; the update reads
// the old powers from a copy bound as b1p/b2p, so no invocation sees a changed value),
// and the int64 step += increment (bit 1; no invocation reads the step).

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
    // Word offsets in `book` of beta1_power, beta2_power and the step; bookkeeping bits.
    b1w: u32,
    b2w: u32,
    stepw: u32,
    bits: u32,
    // The step increment (int64, low word first).
    inc_lo: u32,
    inc_hi: u32,
    pad2: u32,
    pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> var_: array<f32>;
@group(0) @binding(2) var<storage, read_write> s1: array<f32>;
@group(0) @binding(3) var<storage, read_write> s2: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read> lr: array<f32>;
@group(0) @binding(6) var<storage, read> b1p: array<f32>;
@group(0) @binding(7) var<storage, read> b2p: array<f32>;

fn sgd_at(i: u32) {
    if (i >= p.n) {
        return;
    }
    var_[i] = var_[i] - lr[0] * grad[i];
}

fn momentum_at(i: u32) {
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

fn adam_at(i: u32) {
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

fn rmsprop_at(i: u32) {
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

@group(0) @binding(8) var<storage, read_write> book: array<u32>;

fn finish_step(i: u32) {
    if (i == 0u && (p.bits & 2u) != 0u) {
        let lo = book[p.stepw] + p.inc_lo;
        book[p.stepw + 1u] = book[p.stepw + 1u] + p.inc_hi + select(0u, 1u, lo < p.inc_lo);
        book[p.stepw] = lo;
    }
}

fn finish_powers(i: u32) {
    if (i == 0u && (p.bits & 1u) != 0u) {
        book[p.b1w] = bitcast<u32>(b1p[0] * p.h0);
        book[p.b2w] = bitcast<u32>(b2p[0] * p.h1);
    }
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    sgd_at(flat_index(gid, nwg));
}

@compute @workgroup_size(256)
fn sgd_fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    sgd_at(i);
    finish_step(i);
}

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    momentum_at(flat_index(gid, nwg));
}

@compute @workgroup_size(256)
fn momentum_fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    momentum_at(i);
    finish_step(i);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    adam_at(flat_index(gid, nwg));
}

@compute @workgroup_size(256)
fn adam_fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    adam_at(i);
    finish_powers(i);
    finish_step(i);
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    rmsprop_at(flat_index(gid, nwg));
}

@compute @workgroup_size(256)
fn rmsprop_fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    rmsprop_at(i);
    finish_step(i);
}
