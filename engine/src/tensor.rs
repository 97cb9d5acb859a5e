//! Element types, shapes and the host tensor (dtype, shape, little-endian bytes).

use crate::error::{Error, Result};
use std::fmt;

/// The element type of a tensor.
///
/// On the host every dtype is stored as TensorFlow stores it (`bool` as one byte, `i64` as
/// eight). On the device `f32`, `i32` and `u32` are one 32-bit word, `bool` is widened to a
/// 32-bit word (0 or 1) and `i64` is two words (low, high), so the device bytes of an `i64`
/// tensor equal its host bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 32-bit signed integer.
    I32,
    /// 32-bit unsigned integer.
    U32,
    /// 64-bit signed integer (the global step). On the device it supports assignment,
    /// `assign_add`/`assign_sub` and casts.
    I64,
    /// Boolean, the result of comparisons.
    Bool,
}

impl DType {
    /// Bytes per element on the host (TensorFlow's layout).
    pub fn host_size(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// Bytes per element on the device.
    pub fn device_size(self) -> usize {
        match self {
            DType::I64 => 8,
            _ => 4,
        }
    }

    /// TensorFlow's name for the dtype (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::Bool => "bool",
        }
    }

    /// Whether the dtype is a floating-point type (differentiable).
    pub fn is_float(self) -> bool {
        self == DType::F32
    }

    /// Whether the dtype is an integer type.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::U32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats a shape as TensorFlow prints it: `[2,3]`, with `?` for unknown dimensions.
pub fn shape_str(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", dims.join(","))
}

/// The number of elements of a fully known shape.
pub fn num_elements(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A tensor in host memory: dtype, fully known shape and little-endian bytes in
/// TensorFlow's layout (row-major).
#[derive(Clone, PartialEq)]
pub struct HostTensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl fmt::Debug for HostTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostTensor<{}>{:?}", self.dtype, self.shape)?;
        let n = self.len().min(8);
        let vals: Vec<String> = (0..n).map(|i| format!("{}", self.get_f64(i))).collect();
        write!(
            f,
            " [{}{}]",
            vals.join(", "),
            if self.len() > n { ", ..." } else { "" }
        )
    }
}

macro_rules! typed {
    ($from:ident, $as:ident, $to_vec:ident, $scalar:ident, $t:ty, $dt:expr) => {
        #[doc = concat!("A `", stringify!($t), "` tensor of `shape` from `values` (InvalidArgument when the count differs).")]
        pub fn $from(shape: &[usize], values: Vec<$t>) -> Result<Self> {
            Self::check_count($dt, shape, values.len())?;
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok(HostTensor { dtype: $dt, shape: shape.to_vec(), data })
        }

        #[doc = concat!("A scalar `", stringify!($t), "` tensor.")]
        pub fn $scalar(value: $t) -> Self {
            HostTensor { dtype: $dt, shape: vec![], data: value.to_le_bytes().to_vec() }
        }

        #[doc = concat!("The elements as `", stringify!($t), "` (InvalidArgument for another dtype).")]
        pub fn $as(&self) -> Result<Vec<$t>> {
            self.expect_dtype($dt)?;
            const N: usize = std::mem::size_of::<$t>();
            Ok(self
                .data
                .chunks_exact(N)
                .map(|c| {
                    let mut b = [0u8; N];
                    b.copy_from_slice(c);
                    <$t>::from_le_bytes(b)
                })
                .collect())
        }

        #[doc = concat!("The elements as `", stringify!($t), "`, consuming the tensor.")]
        pub fn $to_vec(self) -> Result<Vec<$t>> {
            self.$as()
        }
    };
}

impl HostTensor {
    /// A tensor from raw little-endian host bytes.
    pub fn from_bytes(dtype: DType, shape: &[usize], data: Vec<u8>) -> Result<Self> {
        let want = num_elements(shape) * dtype.host_size();
        if data.len() != want {
            return Err(Error::invalid_argument(format!(
                "{} tensor of shape {:?} needs {want} bytes, got {}",
                dtype,
                shape,
                data.len()
            )));
        }
        Ok(HostTensor {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Self {
        HostTensor {
            dtype,
            shape: shape.to_vec(),
            data: vec![0; num_elements(shape) * dtype.host_size()],
        }
    }

    typed!(from_f32, as_f32, into_f32, scalar_f32, f32, DType::F32);
    typed!(from_i32, as_i32, into_i32, scalar_i32, i32, DType::I32);
    typed!(from_u32, as_u32, into_u32, scalar_u32, u32, DType::U32);
    typed!(from_i64, as_i64, into_i64, scalar_i64, i64, DType::I64);

    /// A boolean tensor of `shape` from `values`.
    pub fn from_bool(shape: &[usize], values: Vec<bool>) -> Result<Self> {
        Self::check_count(DType::Bool, shape, values.len())?;
        Ok(HostTensor {
            dtype: DType::Bool,
            shape: shape.to_vec(),
            data: values.into_iter().map(u8::from).collect(),
        })
    }

    /// The elements of a boolean tensor.
    pub fn as_bool(&self) -> Result<Vec<bool>> {
        self.expect_dtype(DType::Bool)?;
        Ok(self.data.iter().map(|&b| b != 0).collect())
    }

    /// A tensor of any dtype from `f64` values, converted as a cast would.
    pub fn from_f64(dtype: DType, shape: &[usize], values: &[f64]) -> Result<Self> {
        Self::check_count(dtype, shape, values.len())?;
        let mut data = Vec::with_capacity(values.len() * dtype.host_size());
        for &v in values {
            match dtype {
                DType::F32 => data.extend((v as f32).to_le_bytes()),
                DType::I32 => data.extend((v as i32).to_le_bytes()),
                DType::U32 => data.extend((v as u32).to_le_bytes()),
                DType::I64 => data.extend((v as i64).to_le_bytes()),
                DType::Bool => data.push(u8::from(v != 0.0)),
            }
        }
        Ok(HostTensor {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// All elements converted to `f64` (exact for every dtype but `i64` beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.get_f64(i)).collect()
    }

    /// Element `i` (row-major) as `f64`.
    pub fn get_f64(&self, i: usize) -> f64 {
        let s = self.dtype.host_size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::I64 => {
                i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64
            }
            DType::Bool => f64::from(u8::from(b[0] != 0)),
        }
    }

    /// The single element of a one-element tensor as `f64`.
    pub fn scalar_value(&self) -> Result<f64> {
        if self.len() != 1 {
            return Err(Error::invalid_argument(format!(
                "expected a tensor with one element, got shape {:?}",
                self.shape
            )));
        }
        Ok(self.get_f64(0))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        num_elements(&self.shape)
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw little-endian host bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The raw bytes, consuming the tensor.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The same data under a new shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        if num_elements(shape) != self.len() {
            return Err(Error::invalid_argument(format!(
                "cannot reshape a tensor of shape {:?} to {:?}",
                self.shape, shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// The bytes as they are laid out on the device (booleans widened to 32 bits).
    #[cfg(feature = "gpu")]
    pub(crate) fn device_bytes(&self) -> Vec<u8> {
        let mut out = vec![0; self.device_len()];
        self.write_device_bytes(&mut out);
        out
    }

    /// Bytes of the tensor on the device.
    #[cfg(feature = "gpu")]
    pub(crate) fn device_len(&self) -> usize {
        self.len() * self.dtype.device_size()
    }

    /// Writes the device-layout bytes into `out` (`device_len` bytes).
    #[cfg(feature = "gpu")]
    pub(crate) fn write_device_bytes(&self, out: &mut [u8]) {
        match self.dtype {
            DType::Bool => {
                for (o, &b) in out.chunks_exact_mut(4).zip(&self.data) {
                    o.copy_from_slice(&u32::from(b != 0).to_le_bytes());
                }
            }
            _ => out.copy_from_slice(&self.data),
        }
    }

    /// A tensor from device-layout bytes.
    #[cfg(feature = "gpu")]
    pub(crate) fn from_device_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Self {
        let data = match dtype {
            DType::Bool => bytes
                .chunks_exact(4)
                .map(|c| u8::from(c.iter().any(|&b| b != 0)))
                .collect(),
            _ => bytes.to_vec(),
        };
        HostTensor {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    fn check_count(dtype: DType, shape: &[usize], count: usize) -> Result<()> {
        if num_elements(shape) != count {
            return Err(Error::invalid_argument(format!(
                "{dtype} tensor of shape {shape:?} needs {} values, got {count}",
                num_elements(shape)
            )));
        }
        Ok(())
    }

    fn expect_dtype(&self, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::invalid_argument(format!(
                "tensor has dtype {}, not {dtype}",
                self.dtype
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trips_and_errors() {
        let t = HostTensor::from_f32(&[2, 2], vec![1.0, -2.0, 3.5, 0.0]).unwrap();
        assert_eq!(t.as_f32().unwrap(), vec![1.0, -2.0, 3.5, 0.0]);
        assert_eq!(t.as_i32().unwrap_err().code, crate::Code::InvalidArgument);
        let e = HostTensor::from_i64(&[3], vec![1, 2]).unwrap_err();
        assert_eq!(e.code, crate::Code::InvalidArgument);
        let s = HostTensor::scalar_i64(1 << 40);
        assert_eq!(s.as_i64().unwrap(), vec![1 << 40]);
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn device_bytes_widen_booleans() {
        let b = HostTensor::from_bool(&[3], vec![true, false, true]).unwrap();
        let dev = b.device_bytes();
        assert_eq!(dev.len(), 12);
        assert_eq!(HostTensor::from_device_bytes(DType::Bool, &[3], &dev), b);
    }

    #[test]
    fn shape_strings() {
        assert_eq!(shape_str(&[-1, 10]), "[?,10]");
        assert_eq!(shape_str(&[]), "[]");
    }
}
