// Elementwise kernels: unary functions, binary functions and comparisons with
// broadcasting (strided operands), and dtype casts. Words are stored as u32 and
// reinterpreted by the DT override: 0 f32, 1 i32, 2 u32.

struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    extra: u32,
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

override OP: u32 = 0u;
override DT: u32 = 0u;
// Cast source and destination: 0 f32, 1 i32, 2 u32, 3 i64, 4 bool.
override SRC: u32 = 0u;
override DST: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn offsets(i: u32) -> vec2<u32> {
    var rem = i;
    var oa = 0u;
    var ob = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let k = u32(d);
        let s = p.shape[k / 4u][k % 4u];
        let c = rem % s;
        rem = rem / s;
        oa += c * p.sa[k / 4u][k % 4u];
        ob += c * p.sb[k / 4u][k % 4u];
    }
    return vec2<u32>(oa, ob);
}

fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// erfc(z) for z >= 0 with a relative error below 1.2e-7 (the Chebyshev fit of
// Numerical Recipes' erfcc), so the lower tail of the normal distribution keeps its
// digits.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + p);
}

// The standard normal distribution function.
fn normal_cdf(x: f32) -> f32 {
    let e = 0.5 * erfc_pos(abs(x) * 0.70710678);
    return select(e, 1.0 - e, x > 0.0);
}

fn funary(x: f32) -> f32 {
    switch OP {
        case UN_NEG: { return -x; }
        case UN_EXP: { return exp(x); }
        case UN_LOG: { return log(x); }
        case UN_SQRT: { return sqrt(x); }
        case UN_RSQRT: { return inverseSqrt(x); }
        case UN_SQUARE: { return x * x; }
        case UN_ABS: { return abs(x); }
        case UN_RELU: { return max(x, 0.0); }
        case UN_SIGMOID: { return sigmoid(x); }
        case UN_TANH: {
            let e = exp(-2.0 * abs(x));
            return sign(x) * (1.0 - e) / (1.0 + e);
        }
        case UN_SOFTPLUS: {
            let e = exp(-abs(x));
            var l = log(1.0 + e);
            if (e < 1e-4) {
                l = e * (1.0 - 0.5 * e);
            }
            return max(x, 0.0) + l;
        }
        case UN_SIGN: { return sign(x); }
        case UN_COS: { return cos(x); }
        case UN_SIN: { return sin(x); }
        case UN_FLOOR: { return floor(x); }
        case UN_RECIPROCAL: { return 1.0 / x; }
        case UN_GELU: { return x * normal_cdf(x); }
        // Unreachable: every opcode has its case (a test checks); NaN if not.
        default: { return bitcast<f32>(0x7fc00000u); }
    }
}

fn iunary(x: i32) -> i32 {
    switch OP {
        case UN_NEG: { return -x; }
        case UN_SQUARE: { return x * x; }
        case UN_ABS: { return abs(x); }
        case UN_SIGN: { return sign(x); }
        // Only the opcodes defined for integers reach here (a test checks).
        default: { return 0; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let x = a[i];
    if (DT == 0u) {
        out[i] = bitcast<u32>(funary(bitcast<f32>(x)));
    } else {
        out[i] = bitcast<u32>(iunary(bitcast<i32>(x)));
    }
}

fn fpow(x: f32, y: f32) -> f32 {
    if (x < 0.0 && y == round(y)) {
        let m = pow(-x, y);
        if (abs(y % 2.0) == 1.0) {
            return -m;
        }
        return m;
    }
    if (y == 0.0) {
        return 1.0;
    }
    return pow(x, y);
}

fn fbinary(x: f32, y: f32) -> f32 {
    switch OP {
        case BIN_ADD: { return x + y; }
        case BIN_SUB: { return x - y; }
        case BIN_MUL: { return x * y; }
        case BIN_DIV: { return x / y; }
        case BIN_MAXIMUM: { return max(x, y); }
        case BIN_MINIMUM: { return min(x, y); }
        case BIN_POW: { return fpow(x, y); }
        case BIN_RELU_GRAD: { return select(0.0, x, y > 0.0); }
        case BIN_SIGMOID_GRAD: { return y * x * (1.0 - x); }
        case BIN_TANH_GRAD: { return y * (1.0 - x * x); }
        // y * (Φ(x) + x φ(x)), 0.39894228 = 1 / √(2π).
        case BIN_GELU_GRAD: { return y * (normal_cdf(x) + x * exp(-0.5 * x * x) * 0.39894228); }
        // Unreachable: every opcode has its case (a test checks); NaN if not.
        default: { return bitcast<f32>(0x7fc00000u); }
    }
}

fn ibinary(x: i32, y: i32) -> i32 {
    switch OP {
        case BIN_ADD: { return x + y; }
        case BIN_SUB: { return x - y; }
        case BIN_MUL: { return x * y; }
        case BIN_DIV: { return x / y; }
        case BIN_MAXIMUM: { return max(x, y); }
        case BIN_MINIMUM: { return min(x, y); }
        // Only the opcodes defined for integers reach here (a test checks).
        default: { return 0; }
    }
}

fn ubinary(x: u32, y: u32) -> u32 {
    switch OP {
        case BIN_ADD: { return x + y; }
        case BIN_SUB: { return x - y; }
        case BIN_MUL: { return x * y; }
        case BIN_DIV: { return x / y; }
        case BIN_MAXIMUM: { return max(x, y); }
        case BIN_MINIMUM: { return min(x, y); }
        // Only the opcodes defined for integers reach here (a test checks).
        default: { return 0u; }
    }
}

fn compare_f(x: f32, y: f32) -> bool {
    switch OP {
        case CMP_EQUAL: { return x == y; }
        case CMP_NOT_EQUAL: { return x != y; }
        case CMP_GREATER: { return x > y; }
        case CMP_GREATER_EQUAL: { return x >= y; }
        case CMP_LESS: { return x < y; }
        case CMP_LESS_EQUAL: { return x <= y; }
        default: { return false; }
    }
}

fn compare_i(x: i32, y: i32) -> bool {
    switch OP {
        case CMP_EQUAL: { return x == y; }
        case CMP_NOT_EQUAL: { return x != y; }
        case CMP_GREATER: { return x > y; }
        case CMP_GREATER_EQUAL: { return x >= y; }
        case CMP_LESS: { return x < y; }
        case CMP_LESS_EQUAL: { return x <= y; }
        default: { return false; }
    }
}

fn compare_u(x: u32, y: u32) -> bool {
    switch OP {
        case CMP_EQUAL: { return x == y; }
        case CMP_NOT_EQUAL: { return x != y; }
        case CMP_GREATER: { return x > y; }
        case CMP_GREATER_EQUAL: { return x >= y; }
        case CMP_LESS: { return x < y; }
        case CMP_LESS_EQUAL: { return x <= y; }
        default: { return false; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    if (OP >= 100u) {
        var r = false;
        if (DT == 0u) {
            r = compare_f(bitcast<f32>(x), bitcast<f32>(y));
        } else if (DT == 1u) {
            r = compare_i(bitcast<i32>(x), bitcast<i32>(y));
        } else {
            r = compare_u(x, y);
        }
        out[i] = select(0u, 1u, r);
        return;
    }
    if (DT == 0u) {
        out[i] = bitcast<u32>(fbinary(bitcast<f32>(x), bitcast<f32>(y)));
    } else if (DT == 1u) {
        out[i] = bitcast<u32>(ibinary(bitcast<i32>(x), bitcast<i32>(y)));
    } else {
        out[i] = ubinary(x, y);
    }
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Float-to-integer conversions truncate toward zero and saturate, NaN giving 0, spelled
// out because not every backend's native conversion saturates (GLSL's does not).
fn f32_to_i32(v: f32) -> i32 {
    if (is_nan(v)) {
        return 0;
    }
    return i32(clamp(v, -2147483648.0, 2147483520.0));
}

fn f32_to_u32(v: f32) -> u32 {
    if (is_nan(v)) {
        return 0u;
    }
    return u32(clamp(v, 0.0, 4294967040.0));
}

// Reads element i of `a` as (f32 value, low word, high word) for the SRC dtype.
fn load_src(i: u32) -> vec3<f32> {
    switch SRC {
        case 0u: { return vec3<f32>(bitcast<f32>(a[i]), 0.0, 0.0); }
        case 1u: { return vec3<f32>(f32(bitcast<i32>(a[i])), 0.0, 0.0); }
        case 2u: { return vec3<f32>(f32(a[i]), 0.0, 0.0); }
        case 3u: {
            // Convert the magnitude (no cancellation between the words), then the sign.
            var lo = a[2u * i];
            var hi = a[2u * i + 1u];
            let negative = (hi & 0x80000000u) != 0u;
            if (negative) {
                lo = ~lo + 1u;
                hi = ~hi + select(0u, 1u, lo == 0u);
            }
            let m = f32(hi) * 4294967296.0 + f32(lo);
            return vec3<f32>(select(m, -m, negative), 0.0, 0.0);
        }
        default: { return vec3<f32>(select(0.0, 1.0, a[i] != 0u), 0.0, 0.0); }
    }
}

@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    // Integer sources convert exactly into integer destinations.
    var lo = 0u;
    var hi = 0u;
    var exact = true;
    switch SRC {
        case 1u: {
            lo = a[i];
            hi = select(0u, 0xffffffffu, bitcast<i32>(a[i]) < 0);
        }
        case 2u: {
            lo = a[i];
        }
        case 3u: {
            lo = a[2u * i];
            hi = a[2u * i + 1u];
        }
        case 4u: {
            lo = select(0u, 1u, a[i] != 0u);
        }
        default: {
            exact = false;
        }
    }
    let v = load_src(i).x;
    switch DST {
        case 0u: { out[i] = bitcast<u32>(v); }
        case 1u: {
            if (exact) { out[i] = lo; } else { out[i] = bitcast<u32>(f32_to_i32(v)); }
        }
        case 2u: {
            if (exact) { out[i] = lo; } else { out[i] = f32_to_u32(v); }
        }
        case 3u: {
            if (exact) {
                out[2u * i] = lo;
                out[2u * i + 1u] = hi;
            } else {
                let t = trunc(v);
                if (is_nan(v)) {
                    out[2u * i] = 0u;
                    out[2u * i + 1u] = 0u;
                } else if (abs(t) >= 9223372036854775808.0) {
                    // Saturate to i64::MAX or i64::MIN.
                    out[2u * i] = select(0xffffffffu, 0u, t < 0.0);
                    out[2u * i + 1u] = select(0x7fffffffu, 0x80000000u, t < 0.0);
                } else if (abs(t) < 2147483648.0) {
                    let x = f32_to_i32(t);
                    out[2u * i] = bitcast<u32>(x);
                    out[2u * i + 1u] = select(0u, 0xffffffffu, x < 0);
                } else {
                    // Exact: |t| >= 2^31 is a multiple of 256 with 24 significant bits.
                    let m = abs(t);
                    let h = floor(m / 4294967296.0);
                    var l = u32(m - h * 4294967296.0);
                    var hw = u32(h);
                    if (t < 0.0) {
                        l = ~l + 1u;
                        hw = ~hw + select(0u, 1u, l == 0u);
                    }
                    out[2u * i] = l;
                    out[2u * i + 1u] = hw;
                }
            }
        }
        default: {
            if (exact) {
                out[i] = select(0u, 1u, (lo | hi) != 0u);
            } else {
                out[i] = select(0u, 1u, v != 0.0);
            }
        }
    }
}
