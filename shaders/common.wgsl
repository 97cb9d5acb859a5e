// Shared by every kernel family: prepended to each shader file by the registry so
// the flat-index helpers exist once. A flat invocation index is spread over a 2-D
// grid of workgroups so tensors needing more than 65535 workgroups still dispatch.

const WG: u32 = 256u;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}
