//! A node as TensorFlow spells it, without TensorFlow's protobuf types: each op family
//! fills an [`Export`] (op name, inputs, attrs, and the helper nodes TF's spelling
//! needs), and the checkpoint crate writes the result as a `GraphDef`.

use crate::tensor::{DType, HostTensor};

/// An attr value, as TF's `AttrValue` holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum TfAttr {
    /// A dtype (`T`, `dtype`, …).
    Type(DType),
    /// A shape; `-1` for an unknown dimension.
    Shape(Vec<i64>),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f32),
    /// A boolean.
    Bool(bool),
    /// A list of integers (`strides`, `ksize`, …).
    Ints(Vec<i64>),
    /// A string (`padding`, `data_format`, …).
    Str(String),
    /// A tensor (a `Const`'s `value`).
    Tensor(HostTensor),
}

/// One TF node: name, op, inputs (`name`, `name:1`, `^name` for control inputs) and
/// attrs.
#[derive(Clone, Debug, PartialEq)]
pub struct TfNode {
    /// The node's name.
    pub name: String,
    /// TF's op name.
    pub op: String,
    /// The inputs.
    pub inputs: Vec<String>,
    /// The attrs, by name.
    pub attrs: Vec<(String, TfAttr)>,
}

/// The export of one graph node: what the family sets (op, inputs, attrs) and the
/// helper nodes it adds under the node's name (constant inputs, shapes read with
/// `Shape`, the pieces of a gradient TF writes as several ops).
pub struct Export<'a> {
    name: &'a str,
    dtype: DType,
    shape: &'a [i64],
    input_names: Vec<String>,
    input_dtypes: Vec<DType>,
    /// TF's op name; starts as the family's [`super::Op::tf_name`].
    pub op: String,
    /// The node's inputs; start as the graph node's inputs by name.
    pub inputs: Vec<String>,
    /// The node's attrs (set with [`Export::attrs`]).
    pub attrs: Vec<(String, TfAttr)>,
    /// The helper nodes, in the order they were added.
    pub extra: Vec<TfNode>,
}

impl<'a> Export<'a> {
    /// The export of a node `name` of `dtype` and `shape` with inputs named
    /// `input_names` of `input_dtypes`, as op `op` before the family changes it.
    pub fn new(
        name: &'a str,
        op: &str,
        dtype: DType,
        shape: &'a [i64],
        input_names: Vec<String>,
        input_dtypes: Vec<DType>,
    ) -> Export<'a> {
        Export {
            name,
            dtype,
            shape,
            inputs: input_names.clone(),
            input_names,
            input_dtypes,
            op: op.to_string(),
            attrs: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The node's dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The node's shape as the graph holds it.
    pub fn shape(&self) -> &[i64] {
        self.shape
    }

    /// The name of graph input `k`.
    pub fn input(&self, k: usize) -> String {
        self.input_names[k].clone()
    }

    /// The dtype of graph input `k`.
    pub fn input_dtype(&self, k: usize) -> DType {
        self.input_dtypes[k]
    }

    /// The dtype of the first input, or the node's own without inputs (TF's `T`).
    pub fn t(&self) -> DType {
        self.input_dtypes.first().copied().unwrap_or(self.dtype)
    }

    /// Sets attrs (replacing any of the same name).
    pub fn attrs(&mut self, kvs: Vec<(&str, TfAttr)>) {
        for (k, v) in kvs {
            match self.attrs.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v,
                None => self.attrs.push((k.to_string(), v)),
            }
        }
    }

    /// A helper node `<name>/<suffix>`; returns its name.
    pub fn node(
        &mut self,
        suffix: &str,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<(&str, TfAttr)>,
    ) -> String {
        let name = format!("{}/{suffix}", self.name);
        self.extra.push(TfNode {
            name: name.clone(),
            op: op.into(),
            inputs,
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        name
    }

    /// A `Const` helper holding `value`.
    pub fn constant(&mut self, suffix: &str, value: &HostTensor) -> String {
        self.node(
            suffix,
            "Const",
            vec![],
            vec![
                ("dtype", TfAttr::Type(value.dtype())),
                ("value", TfAttr::Tensor(value.clone())),
            ],
        )
    }

    /// An int32 vector `Const`.
    pub fn i32s(&mut self, suffix: &str, v: &[i64]) -> String {
        let t = HostTensor::from_i32(&[v.len()], v.iter().map(|&x| x as i32).collect())
            .unwrap_or_else(|_| HostTensor::zeros(DType::I32, &[0]));
        self.constant(suffix, &t)
    }

    /// An int32 scalar `Const`.
    pub fn i32(&mut self, suffix: &str, v: i64) -> String {
        self.constant(suffix, &HostTensor::scalar_i32(v as i32))
    }

    /// A float scalar `Const`.
    pub fn f32(&mut self, suffix: &str, v: f32) -> String {
        let t = HostTensor::from_f32(&[], vec![v])
            .unwrap_or_else(|_| HostTensor::zeros(DType::F32, &[]));
        self.constant(suffix, &t)
    }

    /// Float scalar `Const`s of an update's hyperparameters, as inputs before its last
    /// (the gradient), where TF's `Apply*` ops take them.
    pub fn before_grad(&mut self, hyper: &[(&str, f32)]) {
        let grad = self.inputs.pop().unwrap_or_default();
        for (name, v) in hyper {
            let c = self.f32(name, *v);
            self.inputs.push(c);
        }
        self.inputs.push(grad);
    }

    /// The int32 shape of `input` (of dtype `dtype`), read with `Shape`.
    pub fn shape_of(&mut self, suffix: &str, input: &str, dtype: DType) -> String {
        self.node(
            suffix,
            "Shape",
            vec![input.to_string()],
            vec![
                ("T", TfAttr::Type(dtype)),
                ("out_type", TfAttr::Type(DType::I32)),
            ],
        )
    }

    /// The int32 element count of `input`, read with `Size`.
    pub fn size_of(&mut self, suffix: &str, input: &str, dtype: DType) -> String {
        self.node(
            suffix,
            "Size",
            vec![input.to_string()],
            vec![
                ("T", TfAttr::Type(dtype)),
                ("out_type", TfAttr::Type(DType::I32)),
            ],
        )
    }

    /// `input` (int32) as float.
    pub fn cast_f32(&mut self, suffix: &str, input: String) -> String {
        self.node(
            suffix,
            "Cast",
            vec![input],
            vec![
                ("SrcT", TfAttr::Type(DType::I32)),
                ("DstT", TfAttr::Type(DType::F32)),
                ("Truncate", TfAttr::Bool(false)),
            ],
        )
    }

    /// The node and its helpers, helpers first.
    pub fn finish(self) -> (Vec<TfNode>, TfNode) {
        let node = TfNode {
            name: self.name.to_string(),
            op: self.op,
            inputs: self.inputs,
            attrs: self.attrs,
        };
        (self.extra, node)
    }
}
