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

/// Templates a family instantiates with `// @instantiate TEMPLATE NAME ARG…`: (template
/// name, file name, source with `$NAME` and its parameters `$A`, `$B`, `$P` …).
pub const TEMPLATES: &[(&str, &str, &str, &[&str])] = &[(
    "matmul_block",
    "matmul_block.wgsl",
    include_str!("../../../shaders/matmul_block.wgsl"),
    &["$A", "$B", "$P"],
)];

/// `body` with every `// @instantiate TEMPLATE NAME ARG…` line followed by the template
/// instantiated: `$NAME` and the template's parameters replaced, in order. A directive
/// naming no template, or with the wrong number of arguments, is kept as it is, so the
/// family fails validation at the call of the function it lacks.
fn instantiate(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.lines() {
        out.push_str(line);
        out.push('\n');
        let Some(rest) = line.trim().strip_prefix("// @instantiate ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some((template, name, args)) = words.split_first().and_then(|(t, r)| {
            let (n, a) = r.split_first()?;
            Some((*t, *n, a))
        }) else {
            continue;
        };
        let Some(&(_, _, src, params)) = TEMPLATES.iter().find(|t| t.0 == template) else {
            continue;
        };
        if params.len() != args.len() {
            continue;
        }
        let mut inst = src.replace("$NAME", name);
        for (p, a) in params.iter().zip(args) {
            inst = inst.replace(p, a);
        }
        out.push_str(&inst);
    }
    out
}

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
    v.extend(TEMPLATES.iter().map(|t| t.1));
    v.push("common.wgsl");
    v
}

/// The opcode constants of the elementwise ops (`const UN_NEG: u32 = 0u;` …), from the
/// Rust tables: the WGSL names them, so reordering an enum cannot change a kernel.
pub fn opcodes() -> String {
    use crate::ops::{BinaryOp, CompareOp, UnaryOp};
    let mut out = String::new();
    let mut line = |name: &str, code: u32| out.push_str(&format!("const {name}: u32 = {code}u;\n"));
    for (op, name) in UnaryOp::ALL {
        line(name, op.code());
    }
    for (op, name) in BinaryOp::ALL {
        line(name, op.code());
    }
    for (op, name) in CompareOp::ALL {
        line(name, op.code());
    }
    out
}

/// The complete WGSL source of a family (prelude + file, its templates instantiated).
pub fn source(shader: Shader) -> String {
    let body = SHADERS
        .iter()
        .find(|s| s.0 == shader)
        .map(|s| s.2)
        .unwrap_or("");
    let codes = if shader == Shader::Elementwise {
        opcodes()
    } else {
        String::new()
    };
    format!("{COMMON}\n{codes}\n{}", instantiate(body))
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
    fn every_instantiation_defines_its_function() {
        let mut seen = 0;
        for &(shader, file, body) in SHADERS {
            let src = source(shader);
            for line in body.lines() {
                if let Some(rest) = line.trim().strip_prefix("// @instantiate ") {
                    let name = rest.split_whitespace().nth(1).unwrap_or("");
                    assert!(src.contains(&format!("fn {name}(")), "{file}: {line}");
                    assert!(!src.contains('$'), "{file}: a template parameter left");
                    seen += 1;
                }
            }
        }
        // The matmul family's register-blocked loops share one template.
        assert!(seen >= 3, "{seen}");
        assert!(
            instantiate("// @instantiate matmul_block f a b\n")
                .lines()
                .count()
                == 1
        );
    }

    /// The opcode names each switch of `elementwise.wgsl`'s function `f` has a case for.
    fn cases(f: &str) -> Vec<String> {
        let src = SHADERS[0].2;
        let start = src
            .find(&format!("fn {f}("))
            .unwrap_or_else(|| panic!("no fn {f}"));
        let body = &src[start..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("case "))
            .map(|l| l.split(':').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn every_elementwise_opcode_has_its_case_and_no_other() {
        use crate::ops::{BinaryOp, CompareOp, UnaryOp};
        assert_eq!(SHADERS[0].0, Shader::Elementwise);
        let names = |v: &[(&str, bool)]| -> Vec<String> {
            v.iter().filter(|x| x.1).map(|x| x.0.to_string()).collect()
        };
        let un: Vec<(&str, bool)> = UnaryOp::ALL
            .iter()
            .map(|(o, n)| (*n, o.allows_int()))
            .collect();
        let bi: Vec<(&str, bool)> = BinaryOp::ALL
            .iter()
            .map(|(o, n)| (*n, o.allows_int()))
            .collect();
        let all =
            |v: &[(&str, bool)]| -> Vec<String> { v.iter().map(|x| x.0.to_string()).collect() };
        assert_eq!(cases("funary"), all(&un));
        assert_eq!(cases("iunary"), names(&un));
        assert_eq!(cases("fbinary"), all(&bi));
        assert_eq!(cases("ibinary"), names(&bi));
        assert_eq!(cases("ubinary"), names(&bi));
        let cm: Vec<String> = CompareOp::ALL.iter().map(|(_, n)| n.to_string()).collect();
        for f in ["compare_f", "compare_i", "compare_u"] {
            assert_eq!(cases(f), cm, "{f}");
        }
        // Codes are the explicit discriminants, distinct within each table.
        let mut codes: Vec<u32> = UnaryOp::ALL.iter().map(|(o, _)| o.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), UnaryOp::ALL.len());
        assert!(opcodes().contains("const UN_NEG: u32 = 0u;"));
        assert!(opcodes().contains("const CMP_LESS_EQUAL: u32 = 105u;"));
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
