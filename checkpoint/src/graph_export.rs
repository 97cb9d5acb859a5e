//! A wgtrain graph as TensorFlow's `GraphDef`: TF's op names and attrs (`MatMul` with
//! `transpose_a`, `Conv2D` with `strides` and `padding`, …), inputs by name, control
//! inputs as `^name`, and the constant inputs TF's ops take (reduction indices, shapes,
//! permutations) as `Const` nodes under the op's name, so TensorBoard draws the model
//! with its name scopes. Also its text form (`graph.pbtxt`), parsed back by
//! [`parse_pbtxt`], and the `MetaGraphDef` written as `<checkpoint>.meta`.

use crate::error::{Error, Result};
use crate::proto::{
    AttrKind, AttrValue, CollectionDef, Dim, GraphDef, ListValue, MetaGraphDef, MetaInfoDef,
    NodeDef, NodeList, SaverDef, TensorProto, TensorShapeProto, VersionDef,
};
use crate::tensor::TfDType;
use crate::text::{quote_bytes, unquote_bytes};
use std::collections::BTreeMap;
use wgtrain_engine::{DType, Graph, HostTensor, Op, Padding};

/// The `versions.producer` TF 2.21 writes.
pub const PRODUCER: i32 = 2474;

fn attr(kind: AttrKind) -> AttrValue {
    AttrValue { value: Some(kind) }
}

fn ty(d: DType) -> AttrValue {
    attr(AttrKind::Type(TfDType::of(d).code()))
}

fn shape_proto(shape: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| Dim {
                size: d,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn ints(v: &[i64]) -> AttrValue {
    attr(AttrKind::List(ListValue {
        i: v.to_vec(),
        ..Default::default()
    }))
}

fn s(v: &str) -> AttrValue {
    attr(AttrKind::S(v.as_bytes().to_vec()))
}

fn b(v: bool) -> AttrValue {
    attr(AttrKind::B(v))
}

/// A tensor as a `TensorProto` (contents as raw little-endian bytes).
pub fn tensor_proto(t: &HostTensor) -> TensorProto {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    TensorProto {
        dtype: TfDType::of(t.dtype()).code(),
        tensor_shape: Some(shape_proto(&shape)),
        tensor_content: t.bytes().to_vec(),
        ..Default::default()
    }
}

fn padding(p: Padding) -> AttrValue {
    s(p.tf_name())
}

/// The `GraphDef` of `g`.
pub fn graph_def(g: &Graph) -> GraphDef {
    let nodes = g.nodes();
    let mut out: Vec<NodeDef> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let mut attrs: BTreeMap<String, AttrValue> = BTreeMap::new();
        let mut inputs: Vec<String> = n
            .inputs
            .iter()
            .map(|t| nodes[t.index()].name.clone())
            .collect();
        let input_dtype = n
            .inputs
            .first()
            .map(|t| nodes[t.index()].dtype)
            .unwrap_or(n.dtype);
        let mut extra: Vec<NodeDef> = Vec::new();
        // A constant input TF's op takes where wgtrain has an attribute.
        let mut const_input = |suffix: &str, value: HostTensor, inputs: &mut Vec<String>| {
            let name = format!("{}/{suffix}", n.name);
            let mut a = BTreeMap::new();
            a.insert("dtype".to_string(), ty(value.dtype()));
            a.insert(
                "value".to_string(),
                attr(AttrKind::Tensor(tensor_proto(&value))),
            );
            extra.push(NodeDef {
                name: name.clone(),
                op: "Const".into(),
                input: vec![],
                device: String::new(),
                attr: a,
            });
            inputs.push(name);
        };
        let scalar = |v: i64| HostTensor::scalar_i32(v as i32);
        let i32s = |v: &[i64]| {
            HostTensor::from_i32(&[v.len()], v.iter().map(|&x| x as i32).collect())
                .unwrap_or_else(|_| HostTensor::zeros(DType::I32, &[0]))
        };
        let mut op = n.op.tf_name().to_string();
        match &n.op {
            Op::Placeholder => {
                attrs.insert("dtype".into(), ty(n.dtype));
                attrs.insert("shape".into(), attr(AttrKind::Shape(shape_proto(&n.shape))));
            }
            Op::Variable { .. } => {
                attrs.insert("dtype".into(), ty(n.dtype));
                attrs.insert("shape".into(), attr(AttrKind::Shape(shape_proto(&n.shape))));
                attrs.insert("container".into(), s(""));
                attrs.insert("shared_name".into(), s(""));
            }
            Op::Const(v) => {
                attrs.insert("dtype".into(), ty(n.dtype));
                attrs.insert("value".into(), attr(AttrKind::Tensor(tensor_proto(v))));
            }
            Op::InitialValue { .. } => {
                attrs.insert("dtype".into(), ty(n.dtype));
                if op != "Const" {
                    attrs.insert("seed".into(), attr(AttrKind::I(0)));
                    attrs.insert("seed2".into(), attr(AttrKind::I(0)));
                    attrs.insert("T".into(), ty(DType::I32));
                    let shape: Vec<i64> = n.shape.clone();
                    const_input("shape", i32s(&shape), &mut inputs);
                } else {
                    let dims: Vec<usize> = n.shape.iter().map(|&d| d.max(0) as usize).collect();
                    attrs.insert(
                        "value".into(),
                        attr(AttrKind::Tensor(tensor_proto(&HostTensor::zeros(
                            n.dtype, &dims,
                        )))),
                    );
                }
            }
            Op::MatMul {
                transpose_a,
                transpose_b,
            } => {
                attrs.insert("T".into(), ty(input_dtype));
                if n.shape.len() > 2 {
                    op = "BatchMatMulV2".into();
                    attrs.insert("adj_x".into(), b(*transpose_a));
                    attrs.insert("adj_y".into(), b(*transpose_b));
                } else {
                    attrs.insert("transpose_a".into(), b(*transpose_a));
                    attrs.insert("transpose_b".into(), b(*transpose_b));
                }
            }
            Op::Reduce {
                axes, keep_dims, ..
            } => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("Tidx".into(), ty(DType::I32));
                attrs.insert("keep_dims".into(), b(*keep_dims));
                let a: Vec<i64> = axes.iter().map(|&x| x as i64).collect();
                const_input("reduction_indices", i32s(&a), &mut inputs);
            }
            Op::Reshape(target) => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("Tshape".into(), ty(DType::I32));
                const_input("shape", i32s(target), &mut inputs);
            }
            Op::Transpose(perm) => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("Tperm".into(), ty(DType::I32));
                let p: Vec<i64> = perm.iter().map(|&x| x as i64).collect();
                const_input("perm", i32s(&p), &mut inputs);
            }
            Op::Cast(to) => {
                attrs.insert("SrcT".into(), ty(input_dtype));
                attrs.insert("DstT".into(), ty(*to));
                attrs.insert("Truncate".into(), b(false));
            }
            Op::ArgMax { axis } => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("Tidx".into(), ty(DType::I32));
                attrs.insert("output_type".into(), ty(DType::I32));
                const_input("dimension", scalar(*axis as i64), &mut inputs);
            }
            Op::OneHot { depth, .. } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("TI".into(), ty(input_dtype));
                attrs.insert("axis".into(), attr(AttrKind::I(-1)));
                const_input("depth", scalar(*depth as i64), &mut inputs);
            }
            Op::BiasAdd => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("data_format".into(), s("NHWC"));
            }
            Op::SparseSoftmaxXent | Op::XentGrad { sparse: true, .. } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("Tlabels".into(), ty(DType::I32));
            }
            Op::Conv2D(c) | Op::Conv2DBackpropInput(c) | Op::Conv2DBackpropFilter(c) => {
                attrs.insert("T".into(), ty(DType::F32));
                let [sh, sw] = c.strides;
                let [dh, dw] = c.dilations;
                attrs.insert("strides".into(), ints(&[1, sh as i64, sw as i64, 1]));
                attrs.insert("dilations".into(), ints(&[1, dh as i64, dw as i64, 1]));
                attrs.insert("padding".into(), padding(c.padding));
                attrs.insert("data_format".into(), s("NHWC"));
                attrs.insert("use_cudnn_on_gpu".into(), b(true));
            }
            Op::MaxPool(p) | Op::AvgPool(p) | Op::MaxPoolGrad(p) | Op::AvgPoolGrad(p) => {
                attrs.insert("T".into(), ty(DType::F32));
                let [kh, kw] = p.ksize;
                let [sh, sw] = p.strides;
                attrs.insert("ksize".into(), ints(&[1, kh as i64, kw as i64, 1]));
                attrs.insert("strides".into(), ints(&[1, sh as i64, sw as i64, 1]));
                attrs.insert("padding".into(), padding(p.padding));
                attrs.insert("data_format".into(), s("NHWC"));
            }
            Op::Concat { axis } => {
                attrs.insert("T".into(), ty(input_dtype));
                attrs.insert("N".into(), attr(AttrKind::I(n.inputs.len() as i64)));
                attrs.insert("Tidx".into(), ty(DType::I32));
                const_input("axis", scalar(*axis as i64), &mut inputs);
            }
            Op::Gather { axis, .. } => {
                attrs.insert("Tparams".into(), ty(input_dtype));
                attrs.insert("Tindices".into(), ty(DType::I32));
                attrs.insert("Taxis".into(), ty(DType::I32));
                attrs.insert("batch_dims".into(), attr(AttrKind::I(0)));
                const_input("axis", scalar(*axis as i64), &mut inputs);
            }
            Op::UnsortedSegmentSum { num_segments } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("Tindices".into(), ty(DType::I32));
                attrs.insert("Tnumsegments".into(), ty(DType::I32));
                const_input("num_segments", scalar(*num_segments as i64), &mut inputs);
            }
            Op::Assign(_) => {
                attrs.insert("T".into(), ty(n.dtype));
                attrs.insert("use_locking".into(), b(false));
                if op == "Assign" {
                    attrs.insert("validate_shape".into(), b(true));
                }
            }
            Op::ApplyGradientDescent | Op::ApplyRmsProp { .. } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("use_locking".into(), b(false));
            }
            Op::ApplyMomentum { nesterov, .. } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("use_locking".into(), b(false));
                attrs.insert("use_nesterov".into(), b(*nesterov));
            }
            Op::ApplyAdam { .. } => {
                attrs.insert("T".into(), ty(DType::F32));
                attrs.insert("use_locking".into(), b(false));
                attrs.insert("use_nesterov".into(), b(false));
            }
            Op::NoOp => {}
            Op::Select | Op::Identity | Op::Unary(_) | Op::Binary(_) | Op::Compare(_) => {
                let t = if matches!(n.op, Op::Select) {
                    n.dtype
                } else {
                    input_dtype
                };
                attrs.insert("T".into(), ty(t));
            }
            _ => {
                attrs.insert("T".into(), ty(input_dtype));
            }
        }
        inputs.extend(
            n.control_inputs
                .iter()
                .map(|c| format!("^{}", nodes[c.index()].name)),
        );
        out.extend(extra);
        out.push(NodeDef {
            name: n.name.clone(),
            op,
            input: inputs,
            device: String::new(),
            attr: attrs,
        });
    }
    GraphDef {
        node: out,
        versions: Some(VersionDef {
            producer: PRODUCER,
            min_consumer: 12,
            bad_consumers: vec![],
        }),
    }
}

/// The `MetaGraphDef` of `g`: its graph, a V2 `SaverDef` (`max_to_keep`,
/// `keep_checkpoint_every_n_hours` as given), and the graph's collections as node lists.
pub fn meta_graph_def(g: &Graph, max_to_keep: i32, keep_hours: f32) -> MetaGraphDef {
    let mut collection_def = BTreeMap::new();
    for key in g.collection_keys() {
        let names: Vec<String> = g
            .collection(&key)
            .iter()
            .map(|t| format!("{}:0", g.name(*t)))
            .collect();
        collection_def.insert(
            key,
            CollectionDef {
                node_list: Some(NodeList { value: names }),
            },
        );
    }
    MetaGraphDef {
        meta_info_def: Some(MetaInfoDef {
            meta_graph_version: String::new(),
            tags: vec![],
            tensorflow_version: "2.21.0".into(),
            tensorflow_git_version: "wgtrain".into(),
        }),
        graph_def: Some(graph_def(g)),
        saver_def: Some(SaverDef {
            filename_tensor_name: "save/Const:0".into(),
            save_tensor_name: "save/Identity:0".into(),
            restore_op_name: "save/restore_all".into(),
            max_to_keep,
            sharded: true,
            keep_checkpoint_every_n_hours: keep_hours,
            version: 2,
        }),
        collection_def,
    }
}

// ---------------------------------------------------------------------------------
// Text format.

const DTYPES: &[(&str, i32)] = &[
    ("DT_FLOAT", 1),
    ("DT_DOUBLE", 2),
    ("DT_INT32", 3),
    ("DT_UINT8", 4),
    ("DT_INT16", 5),
    ("DT_INT8", 6),
    ("DT_STRING", 7),
    ("DT_INT64", 9),
    ("DT_BOOL", 10),
    ("DT_BFLOAT16", 14),
    ("DT_UINT16", 17),
    ("DT_HALF", 19),
    ("DT_RESOURCE", 20),
    ("DT_VARIANT", 21),
    ("DT_UINT32", 22),
    ("DT_UINT64", 23),
];

fn dtype_name(code: i32) -> String {
    DTYPES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| code.to_string())
}

struct Printer {
    out: String,
    depth: usize,
}

impl Printer {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn open(&mut self, name: &str) {
        self.line(&format!("{name} {{"));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }

    fn shape(&mut self, name: &str, sh: &TensorShapeProto) {
        self.open(name);
        for d in &sh.dim {
            self.open("dim");
            self.line(&format!("size: {}", d.size));
            self.close();
        }
        if sh.unknown_rank {
            self.line("unknown_rank: true");
        }
        self.close();
    }

    fn tensor(&mut self, t: &TensorProto) {
        self.open("tensor");
        self.line(&format!("dtype: {}", dtype_name(t.dtype)));
        if let Some(sh) = &t.tensor_shape {
            self.shape("tensor_shape", sh);
        }
        if !t.tensor_content.is_empty() {
            self.line(&format!(
                "tensor_content: {}",
                quote_bytes(&t.tensor_content)
            ));
        }
        for v in &t.float_val {
            self.line(&format!("float_val: {v:?}"));
        }
        for v in &t.int_val {
            self.line(&format!("int_val: {v}"));
        }
        for v in &t.int64_val {
            self.line(&format!("int64_val: {v}"));
        }
        for v in &t.bool_val {
            self.line(&format!("bool_val: {v}"));
        }
        for v in &t.string_val {
            self.line(&format!("string_val: {}", quote_bytes(v)));
        }
        self.close();
    }

    fn attr_value(&mut self, v: &AttrValue) {
        self.open("value");
        match &v.value {
            Some(AttrKind::S(x)) => self.line(&format!("s: {}", quote_bytes(x))),
            Some(AttrKind::I(x)) => self.line(&format!("i: {x}")),
            Some(AttrKind::F(x)) => self.line(&format!("f: {x:?}")),
            Some(AttrKind::B(x)) => self.line(&format!("b: {x}")),
            Some(AttrKind::Type(x)) => self.line(&format!("type: {}", dtype_name(*x))),
            Some(AttrKind::Shape(x)) => self.shape("shape", x),
            Some(AttrKind::Tensor(x)) => self.tensor(x),
            Some(AttrKind::List(l)) => {
                self.open("list");
                for x in &l.s {
                    self.line(&format!("s: {}", quote_bytes(x)));
                }
                for x in &l.i {
                    self.line(&format!("i: {x}"));
                }
                for x in &l.f {
                    self.line(&format!("f: {x:?}"));
                }
                for x in &l.b {
                    self.line(&format!("b: {x}"));
                }
                for x in &l.r#type {
                    self.line(&format!("type: {}", dtype_name(*x)));
                }
                for x in &l.shape {
                    self.shape("shape", x);
                }
                self.close();
            }
            None => {}
        }
        self.close();
    }
}

/// `g` in protobuf text format, as TF's `graph.pbtxt`.
pub fn to_pbtxt(g: &GraphDef) -> String {
    let mut p = Printer {
        out: String::new(),
        depth: 0,
    };
    for n in &g.node {
        p.open("node");
        p.line(&format!("name: {}", quote_bytes(n.name.as_bytes())));
        p.line(&format!("op: {}", quote_bytes(n.op.as_bytes())));
        for i in &n.input {
            p.line(&format!("input: {}", quote_bytes(i.as_bytes())));
        }
        if !n.device.is_empty() {
            p.line(&format!("device: {}", quote_bytes(n.device.as_bytes())));
        }
        for (k, v) in &n.attr {
            p.open("attr");
            p.line(&format!("key: {}", quote_bytes(k.as_bytes())));
            p.attr_value(v);
            p.close();
        }
        p.close();
    }
    if let Some(v) = &g.versions {
        p.open("versions");
        p.line(&format!("producer: {}", v.producer));
        if v.min_consumer != 0 {
            p.line(&format!("min_consumer: {}", v.min_consumer));
        }
        p.close();
    }
    p.out
}

/// A parsed text-format message: fields in order, each a scalar token or a message.
#[derive(Clone, Debug)]
enum Field {
    Scalar(String),
    Message(Vec<(String, Field)>),
}

struct Lexer<'a> {
    b: &'a [u8],
    at: usize,
}

impl Lexer<'_> {
    fn skip(&mut self) {
        while self.at < self.b.len() {
            let c = self.b[self.at];
            if c == b'#' {
                while self.at < self.b.len() && self.b[self.at] != b'\n' {
                    self.at += 1;
                }
            } else if c.is_ascii_whitespace() {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn err(&self, what: &str) -> Error {
        Error::invalid_argument(format!("pbtxt at byte {}: {what}", self.at))
    }

    fn ident(&mut self) -> Result<String> {
        self.skip();
        let start = self.at;
        while self.at < self.b.len()
            && (self.b[self.at].is_ascii_alphanumeric() || b"_.[]/".contains(&self.b[self.at]))
        {
            self.at += 1;
        }
        if start == self.at {
            return Err(self.err("expected a field name"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.at]).into_owned())
    }

    /// A scalar: a quoted string (kept quoted, adjacent strings joined) or a bare token.
    fn scalar(&mut self) -> Result<String> {
        self.skip();
        let c = *self
            .b
            .get(self.at)
            .ok_or_else(|| self.err("expected a value"))?;
        if c == b'"' || c == b'\'' {
            let mut parts = String::new();
            while self.at < self.b.len() && (self.b[self.at] == b'"' || self.b[self.at] == b'\'') {
                let q = self.b[self.at];
                let start = self.at;
                self.at += 1;
                while self.at < self.b.len() && self.b[self.at] != q {
                    if self.b[self.at] == b'\\' {
                        self.at += 1;
                    }
                    self.at += 1;
                }
                self.at += 1;
                parts.push_str(&String::from_utf8_lossy(
                    &self.b[start..self.at.min(self.b.len())],
                ));
                self.skip();
            }
            return Ok(parts);
        }
        let start = self.at;
        while self.at < self.b.len()
            && !self.b[self.at].is_ascii_whitespace()
            && !b"{}:;,".contains(&self.b[self.at])
        {
            self.at += 1;
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.at]).into_owned())
    }

    fn message(&mut self, closing: Option<u8>) -> Result<Vec<(String, Field)>> {
        let mut out = Vec::new();
        loop {
            self.skip();
            match (self.b.get(self.at), closing) {
                (None, None) => return Ok(out),
                (None, Some(_)) => return Err(self.err("unexpected end")),
                (Some(&c), Some(close)) if c == close => {
                    self.at += 1;
                    return Ok(out);
                }
                _ => {}
            }
            let name = self.ident()?;
            self.skip();
            if self.b.get(self.at) == Some(&b':') {
                self.at += 1;
                self.skip();
            }
            match self.b.get(self.at) {
                Some(b'{') | Some(b'<') => {
                    let close = if self.b[self.at] == b'{' { b'}' } else { b'>' };
                    self.at += 1;
                    out.push((name, Field::Message(self.message(Some(close))?)));
                }
                Some(b'[') => {
                    self.at += 1;
                    loop {
                        self.skip();
                        if self.b.get(self.at) == Some(&b']') {
                            self.at += 1;
                            break;
                        }
                        let before = self.at;
                        let value = self.scalar()?;
                        if self.at == before {
                            return Err(self.err("expected a list value or ']'"));
                        }
                        out.push((name.clone(), Field::Scalar(value)));
                        self.skip();
                        if self.b.get(self.at) == Some(&b',') {
                            self.at += 1;
                        }
                    }
                }
                _ => out.push((name, Field::Scalar(self.scalar()?))),
            }
            self.skip();
            if matches!(self.b.get(self.at), Some(b';') | Some(b',')) {
                self.at += 1;
            }
        }
    }
}

fn string(v: &Field) -> Result<String> {
    match v {
        Field::Scalar(s) => Ok(String::from_utf8_lossy(&unquote_bytes(s)?).into_owned()),
        Field::Message(_) => Err(Error::invalid_argument("pbtxt: expected a string")),
    }
}

fn number<T: std::str::FromStr>(v: &Field) -> Result<T> {
    match v {
        Field::Scalar(s) => s
            .trim_end_matches(['f', 'F'])
            .parse()
            .map_err(|_| Error::invalid_argument(format!("pbtxt: bad number {s}"))),
        Field::Message(_) => Err(Error::invalid_argument("pbtxt: expected a number")),
    }
}

fn boolean(v: &Field) -> Result<bool> {
    match v {
        Field::Scalar(s) => Ok(s == "true" || s == "1" || s == "True"),
        Field::Message(_) => Err(Error::invalid_argument("pbtxt: expected a bool")),
    }
}

fn dtype(v: &Field) -> Result<i32> {
    match v {
        Field::Scalar(s) => DTYPES
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, c)| *c)
            .or_else(|| s.parse().ok())
            .ok_or_else(|| Error::invalid_argument(format!("pbtxt: unknown dtype {s}"))),
        Field::Message(_) => Err(Error::invalid_argument("pbtxt: expected a dtype")),
    }
}

fn msg(v: &Field) -> Result<&[(String, Field)]> {
    match v {
        Field::Message(m) => Ok(m),
        Field::Scalar(_) => Err(Error::invalid_argument("pbtxt: expected a message")),
    }
}

fn parse_shape(m: &[(String, Field)]) -> Result<TensorShapeProto> {
    let mut sh = TensorShapeProto::default();
    for (k, v) in m {
        match k.as_str() {
            "dim" => {
                let mut d = Dim::default();
                for (dk, dv) in msg(v)? {
                    match dk.as_str() {
                        "size" => d.size = number(dv)?,
                        "name" => d.name = string(dv)?,
                        _ => {}
                    }
                }
                sh.dim.push(d);
            }
            "unknown_rank" => sh.unknown_rank = boolean(v)?,
            _ => {}
        }
    }
    Ok(sh)
}

fn parse_tensor(m: &[(String, Field)]) -> Result<TensorProto> {
    let mut t = TensorProto::default();
    for (k, v) in m {
        match k.as_str() {
            "dtype" => t.dtype = dtype(v)?,
            "tensor_shape" => t.tensor_shape = Some(parse_shape(msg(v)?)?),
            "version_number" => t.version_number = number(v)?,
            "tensor_content" => {
                if let Field::Scalar(s) = v {
                    t.tensor_content = unquote_bytes(s)?;
                }
            }
            "float_val" => t.float_val.push(number(v)?),
            "double_val" => t.double_val.push(number(v)?),
            "int_val" => t.int_val.push(number(v)?),
            "int64_val" => t.int64_val.push(number(v)?),
            "bool_val" => t.bool_val.push(boolean(v)?),
            "uint32_val" => t.uint32_val.push(number(v)?),
            "string_val" => {
                if let Field::Scalar(s) = v {
                    t.string_val.push(unquote_bytes(s)?);
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

fn parse_attr_value(m: &[(String, Field)]) -> Result<AttrValue> {
    let mut a = AttrValue::default();
    for (k, v) in m {
        a.value = Some(match k.as_str() {
            "s" => AttrKind::S(match v {
                Field::Scalar(s) => unquote_bytes(s)?,
                Field::Message(_) => Vec::new(),
            }),
            "i" => AttrKind::I(number(v)?),
            "f" => AttrKind::F(number(v)?),
            "b" => AttrKind::B(boolean(v)?),
            "type" => AttrKind::Type(dtype(v)?),
            "shape" => AttrKind::Shape(parse_shape(msg(v)?)?),
            "tensor" => AttrKind::Tensor(parse_tensor(msg(v)?)?),
            "list" => {
                let mut l = ListValue::default();
                for (lk, lv) in msg(v)? {
                    match lk.as_str() {
                        "s" => {
                            if let Field::Scalar(s) = lv {
                                l.s.push(unquote_bytes(s)?);
                            }
                        }
                        "i" => l.i.push(number(lv)?),
                        "f" => l.f.push(number(lv)?),
                        "b" => l.b.push(boolean(lv)?),
                        "type" => l.r#type.push(dtype(lv)?),
                        "shape" => l.shape.push(parse_shape(msg(lv)?)?),
                        _ => {}
                    }
                }
                AttrKind::List(l)
            }
            // func, placeholder: kept out of this subset.
            _ => continue,
        });
    }
    Ok(a)
}

/// Parses a `GraphDef` in text format (nodes, attrs and versions; a function library
/// is skipped). InvalidArgument with the byte offset on malformed text.
pub fn parse_pbtxt(text: &str) -> Result<GraphDef> {
    let mut lx = Lexer {
        b: text.as_bytes(),
        at: 0,
    };
    let top = lx.message(None)?;
    let mut g = GraphDef::default();
    for (k, v) in &top {
        match k.as_str() {
            "node" => {
                let mut n = NodeDef::default();
                for (nk, nv) in msg(v)? {
                    match nk.as_str() {
                        "name" => n.name = string(nv)?,
                        "op" => n.op = string(nv)?,
                        "input" => n.input.push(string(nv)?),
                        "device" => n.device = string(nv)?,
                        "attr" => {
                            let mut key = String::new();
                            let mut value = AttrValue::default();
                            for (ak, av) in msg(nv)? {
                                match ak.as_str() {
                                    "key" => key = string(av)?,
                                    "value" => value = parse_attr_value(msg(av)?)?,
                                    _ => {}
                                }
                            }
                            n.attr.insert(key, value);
                        }
                        _ => {}
                    }
                }
                g.node.push(n);
            }
            "versions" => {
                let mut ver = VersionDef::default();
                for (vk, vv) in msg(v)? {
                    match vk.as_str() {
                        "producer" => ver.producer = number(vv)?,
                        "min_consumer" => ver.min_consumer = number(vv)?,
                        "bad_consumers" => ver.bad_consumers.push(number(vv)?),
                        _ => {}
                    }
                }
                g.versions = Some(ver);
            }
            _ => {}
        }
    }
    Ok(g)
}

/// Writes `graph.pbtxt` of `g` in `dir` (atomically).
pub fn write_graph_pbtxt(dir: &std::path::Path, g: &Graph) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), &e))?;
    crate::bundle::write_atomic(
        &dir.join("graph.pbtxt"),
        to_pbtxt(&graph_def(g)).as_bytes(),
        &mut crate::bundle::NoFault,
        "graph.pbtxt",
    )
}

/// The events TF's `FileWriter(graph=…)` writes first: the `graph_def` and the
/// `meta_graph_def`, at step 0.
pub fn graph_events(g: &Graph) -> Vec<crate::proto::Event> {
    use prost::Message;
    vec![
        crate::events::event(
            0,
            crate::proto::What::GraphDef(graph_def(g).encode_to_vec()),
        ),
        crate::events::event(
            0,
            crate::proto::What::MetaGraphDef(meta_graph_def(g, 5, 10_000.0).encode_to_vec()),
        ),
    ]
}

/// A [`Saver`](crate::Saver) exporter writing the `MetaGraphDef` of `g` as
/// `<checkpoint>.meta`.
pub fn meta_exporter(
    g: std::sync::Arc<Graph>,
    max_to_keep: i32,
    keep_hours: f32,
) -> crate::saver::MetaExporter {
    use prost::Message;
    let bytes = meta_graph_def(&g, max_to_keep, keep_hours).encode_to_vec();
    std::sync::Arc::new(move |path: &std::path::Path| {
        crate::bundle::write_atomic(path, &bytes, &mut crate::bundle::NoFault, "meta graph")
    })
}
