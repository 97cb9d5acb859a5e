// Shared by every kernel family: prepended to each shader file by the registry so
// the flat-index helpers exist once. A flat invocation index is spread over a 2-D
// grid of workgroups so tensors needing more than 65535 workgroups still dispatch.

const WG: u32 = 256u;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

// The four indices i0, i0 + 1, i0 + 2, i0 + 3, each at most count - 1 (a 4-wide
// register block at the edge of a dimension reads the last element again).
fn clamp4(i0: u32, count: u32) -> vec4<u32> {
    return min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(count - 1u));
}
