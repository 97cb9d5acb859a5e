//! The text format of a `GraphDef` (`graph.pbtxt`, as TF's `tf.io.write_graph` writes
//! it) and its parser: what the exporter writes, what TF's `text_format` reads, and the
//! tests' way back.

use crate::error::{Error, Result};
use crate::proto::{
    AttrKind, AttrValue, Dim, GraphDef, ListValue, NodeDef, TensorProto, TensorShapeProto,
    VersionDef,
};
use crate::text::{quote_bytes, unquote_bytes};

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
