// The matmul family's inner loop, written once. WGSL cannot pass a storage buffer to a
// function, so the registry (`runtime::shaders`) instantiates this template for every
// line `// @instantiate matmul_block NAME A B P` of a family, replacing $NAME, $A, $B
// and $P.
//
// $NAME(abase, bbase, row0, col0, sums) is the 4x4 block of op($A) @ op($B) at rows
// row0.. and columns col0.., with $A element (i, k) at abase + i * $P.a_rs + k * $P.a_ks
// and $B element (k, j) at bbase + k * $P.b_ks + j * $P.b_cs over k < $P.k; and (fifth
// vector, when `sums`) the sums over k of $B's four columns. Rows and columns past the
// edge are clamped; their results are not to be stored.
fn $NAME(abase: u32, bbase: u32, row0: u32, col0: u32, sums: bool) -> array<vec4<f32>, 5> {
    let ra = abase + clamp4(row0, $P.m) * $P.a_rs;
    let cb = bbase + clamp4(col0, $P.n) * $P.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var colsum = vec4<f32>(0.0);
    // Blocks of 4096: software rasterizers cap the trip count of one loop.
    for (var k0 = 0u; k0 < $P.k; k0 += 4096u) {
        let k1 = min(k0 + 4096u, $P.k);
        for (var kk = k0; kk < k1; kk++) {
            let ak = kk * $P.a_ks;
            let bk = kk * $P.b_ks;
            let av = vec4<f32>($A[ra.x + ak], $A[ra.y + ak], $A[ra.z + ak], $A[ra.w + ak]);
            let bv = vec4<f32>($B[cb.x + bk], $B[cb.y + bk], $B[cb.z + bk], $B[cb.w + bk]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
            if (sums) {
                colsum += bv;
            }
        }
    }
    return array<vec4<f32>, 5>(acc0, acc1, acc2, acc3, colsum);
}
