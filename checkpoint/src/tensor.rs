//! Tensors as checkpoints hold them: every TF dtype a bundle may contain, raw
//! little-endian bytes (or byte strings), and conversions to the engine's host tensors.

use crate::error::{Error, Result};
use wgtrain_engine::{DType, HostTensor};

/// TF's `DataType` values that bundles hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TfDType {
    /// `DT_FLOAT`.
    Float,
    /// `DT_DOUBLE`.
    Double,
    /// `DT_INT32`.
    Int32,
    /// `DT_UINT8`.
    UInt8,
    /// `DT_INT16`.
    Int16,
    /// `DT_INT8`.
    Int8,
    /// `DT_STRING`.
    String,
    /// `DT_INT64`.
    Int64,
    /// `DT_BOOL`.
    Bool,
    /// `DT_BFLOAT16`.
    BFloat16,
    /// `DT_UINT16`.
    UInt16,
    /// `DT_HALF`.
    Half,
    /// `DT_UINT32`.
    UInt32,
    /// `DT_UINT64`.
    UInt64,
}

impl TfDType {
    /// The `DataType` enum value.
    pub fn code(self) -> i32 {
        match self {
            TfDType::Float => 1,
            TfDType::Double => 2,
            TfDType::Int32 => 3,
            TfDType::UInt8 => 4,
            TfDType::Int16 => 5,
            TfDType::Int8 => 6,
            TfDType::String => 7,
            TfDType::Int64 => 9,
            TfDType::Bool => 10,
            TfDType::BFloat16 => 14,
            TfDType::UInt16 => 17,
            TfDType::Half => 19,
            TfDType::UInt32 => 22,
            TfDType::UInt64 => 23,
        }
    }

    /// The dtype of a `DataType` enum value.
    pub fn from_code(code: i32) -> Option<TfDType> {
        Some(match code {
            1 => TfDType::Float,
            2 => TfDType::Double,
            3 => TfDType::Int32,
            4 => TfDType::UInt8,
            5 => TfDType::Int16,
            6 => TfDType::Int8,
            7 => TfDType::String,
            9 => TfDType::Int64,
            10 => TfDType::Bool,
            14 => TfDType::BFloat16,
            17 => TfDType::UInt16,
            19 => TfDType::Half,
            22 => TfDType::UInt32,
            23 => TfDType::UInt64,
            _ => return None,
        })
    }

    /// TF's name (`float32`, `int64`, …).
    pub fn name(self) -> &'static str {
        match self {
            TfDType::Float => "float32",
            TfDType::Double => "float64",
            TfDType::Int32 => "int32",
            TfDType::UInt8 => "uint8",
            TfDType::Int16 => "int16",
            TfDType::Int8 => "int8",
            TfDType::String => "string",
            TfDType::Int64 => "int64",
            TfDType::Bool => "bool",
            TfDType::BFloat16 => "bfloat16",
            TfDType::UInt16 => "uint16",
            TfDType::Half => "float16",
            TfDType::UInt32 => "uint32",
            TfDType::UInt64 => "uint64",
        }
    }

    /// Bytes per element; `None` for strings.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            TfDType::Int8 | TfDType::UInt8 | TfDType::Bool => 1,
            TfDType::Int16 | TfDType::UInt16 | TfDType::Half | TfDType::BFloat16 => 2,
            TfDType::Float | TfDType::Int32 | TfDType::UInt32 => 4,
            TfDType::Double | TfDType::Int64 | TfDType::UInt64 => 8,
            TfDType::String => return None,
        })
    }

    /// The engine dtype stored as this TF dtype.
    pub fn of(d: DType) -> TfDType {
        match d {
            DType::F32 => TfDType::Float,
            DType::I32 => TfDType::Int32,
            DType::U32 => TfDType::UInt32,
            DType::I64 => TfDType::Int64,
            DType::Bool => TfDType::Bool,
        }
    }

    /// The engine dtype of this TF dtype, if the engine has one.
    pub fn engine(self) -> Option<DType> {
        Some(match self {
            TfDType::Float => DType::F32,
            TfDType::Int32 => DType::I32,
            TfDType::UInt32 => DType::U32,
            TfDType::Int64 => DType::I64,
            TfDType::Bool => DType::Bool,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TfDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a checkpoint tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Fixed-size elements, little endian, row-major.
    Bytes(Vec<u8>),
    /// Byte strings (`DT_STRING`).
    Strings(Vec<Vec<u8>>),
}

/// A tensor as a checkpoint stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The element type.
    pub dtype: TfDType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: Data,
}

impl Tensor {
    /// A fixed-size tensor from raw little-endian bytes (checked against the shape).
    pub fn from_bytes(dtype: TfDType, shape: &[usize], bytes: Vec<u8>) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        match dtype.size() {
            Some(s) if s * n == bytes.len() => Ok(Tensor {
                dtype,
                shape: shape.to_vec(),
                data: Data::Bytes(bytes),
            }),
            _ => Err(Error::invalid_argument(format!(
                "{} bytes for a {dtype} tensor of shape {shape:?}",
                bytes.len()
            ))),
        }
    }

    /// A string tensor.
    pub fn from_strings(shape: &[usize], strings: Vec<Vec<u8>>) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != strings.len() {
            return Err(Error::invalid_argument(format!(
                "{} strings for shape {shape:?}",
                strings.len()
            )));
        }
        Ok(Tensor {
            dtype: TfDType::String,
            shape: shape.to_vec(),
            data: Data::Strings(strings),
        })
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensor of an engine host tensor (host layout: TF's).
    pub fn from_host(t: &HostTensor) -> Tensor {
        Tensor {
            dtype: TfDType::of(t.dtype()),
            shape: t.shape().to_vec(),
            data: Data::Bytes(t.bytes().to_vec()),
        }
    }

    /// The engine host tensor; Unimplemented for a dtype the engine lacks.
    pub fn to_host(&self) -> Result<HostTensor> {
        let Some(d) = self.dtype.engine() else {
            return Err(Error::unimplemented(format!(
                "the engine has no {} tensors",
                self.dtype
            )));
        };
        match &self.data {
            Data::Bytes(b) => HostTensor::from_bytes(d, &self.shape, b.clone()),
            Data::Strings(_) => Err(Error::internal("string data for a numeric dtype")),
        }
    }

    /// Every element as f64 (numeric dtypes; half and bfloat16 widened exactly).
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        let Data::Bytes(b) = &self.data else {
            return Err(Error::invalid_argument(
                "string tensors have no numeric values",
            ));
        };
        let s = self.dtype.size().unwrap_or(1);
        Ok(b.chunks_exact(s)
            .map(|c| {
                let u16v = || u16::from_le_bytes([c[0], c[1]]);
                match self.dtype {
                    TfDType::Float => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    TfDType::Double => f64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                    TfDType::Int32 => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    TfDType::UInt32 => f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    TfDType::Int64 => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
                    TfDType::UInt64 => u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
                    TfDType::Int16 => f64::from(i16::from_le_bytes([c[0], c[1]])),
                    TfDType::UInt16 => f64::from(u16v()),
                    TfDType::Int8 => f64::from(c[0] as i8),
                    TfDType::UInt8 | TfDType::Bool => f64::from(c[0]),
                    TfDType::BFloat16 => f64::from(f32::from_bits(u32::from(u16v()) << 16)),
                    TfDType::Half => half_to_f64(u16v()),
                    TfDType::String => 0.0,
                }
            })
            .collect())
    }
}

/// IEEE binary16 to f64.
fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(i32::from(e) - 15),
    }
}
