//! The registry of WGSL kernel families under `shaders/`.
//!
//! Every `.wgsl` file is embedded here with `include_str!` and listed once in
//! [`SHADERS`]; a test validates each with naga and fails if a file in `shaders/` is
//! missing from the list. `common.wgsl` is prepended to every family.

/// A kernel family: one WGSL file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// Unary, binary, compare, cast (`elementwise.wgsl`).
    Elementwise,
    /// Strided gather: transpose, broadcast, copy (`layout.wgsl`).
    Layout,
    /// Reductions and argmax (`reduce.wgsl`).
    Reduce,
    /// Batched matmul (`matmul.wgsl`).
    Matmul,
    /// Softmax, log-softmax, cross-entropy (`softmax.wgsl`).
    Softmax,
    /// One-hot (`index.wgsl`).
    Index,
    /// Optimizer updates (`optim.wgsl`).
    Optim,
    /// In-place variable updates (`state.wgsl`).
    State,
    /// Convolution and pooling (`conv.wgsl`).
    Conv,
    /// Slices, padding, tiling, concatenation, select (`remap.wgsl`).
    Remap,
    /// Row gathers and segment sums (`gather.wgsl`).
    Gather,
    /// Dropout's counter-based generator (`random.wgsl`).
    Random,
}

/// Helpers prepended to every family.
pub const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// Every registered family: (shader, file name, source without the common prelude).
pub const SHADERS: &[(Shader, &str, &str)] = &[
    (
        Shader::Elementwise,
        "elementwise.wgsl",
        include_str!("../../../shaders/elementwise.wgsl"),
    ),
    (
        Shader::Layout,
        "layout.wgsl",
        include_str!("../../../shaders/layout.wgsl"),
    ),
    (
        Shader::Reduce,
        "reduce.wgsl",
        include_str!("../../../shaders/reduce.wgsl"),
    ),
    (
        Shader::Matmul,
        "matmul.wgsl",
        include_str!("../../../shaders/matmul.wgsl"),
    ),
    (
        Shader::Softmax,
        "softmax.wgsl",
        include_str!("../../../shaders/softmax.wgsl"),
    ),
    (
        Shader::Index,
        "index.wgsl",
        include_str!("../../../shaders/index.wgsl"),
    ),
    (
        Shader::Optim,
        "optim.wgsl",
        include_str!("../../../shaders/optim.wgsl"),
    ),
    (
        Shader::Conv,
        "conv.wgsl",
        include_str!("../../../shaders/conv.wgsl"),
    ),
    (
        Shader::Remap,
        "remap.wgsl",
        include_str!("../../../shaders/remap.wgsl"),
    ),
    (
        Shader::Gather,
        "gather.wgsl",
        include_str!("../../../shaders/gather.wgsl"),
    ),
    (
        Shader::Random,
        "random.wgsl",
        include_str!("../../../shaders/random.wgsl"),
    ),
    (
        Shader::State,
        "state.wgsl",
        include_str!("../../../shaders/state.wgsl"),
    ),
];

/// The file names of all registered shaders, `common.wgsl` included.
pub fn registered_files() -> Vec<&'static str> {
    let mut v: Vec<&str> = SHADERS.iter().map(|s| s.1).collect();
    v.push("common.wgsl");
    v
}

/// The complete WGSL source of a family (prelude + file).
pub fn source(shader: Shader) -> String {
    let body = SHADERS
        .iter()
        .find(|s| s.0 == shader)
        .map(|s| s.2)
        .unwrap_or("");
    format!("{COMMON}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shader_validates_with_naga() {
        for &(shader, file, _) in SHADERS {
            let src = source(shader);
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(&src)));
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            );
            if let Err(e) = v.validate(&module) {
                panic!("{file}: {}", e.emit_to_string(&src));
            }
            assert!(!module.entry_points.is_empty(), "{file} has no entry point");
        }
    }

    #[test]
    fn every_wgsl_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
        let registered = registered_files();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .to_string();
            if name.ends_with(".wgsl") {
                seen += 1;
                assert!(
                    registered.contains(&name.as_str()),
                    "shaders/{name} is not registered"
                );
            }
        }
        assert_eq!(seen, registered.len());
    }
}
