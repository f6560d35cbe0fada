//! Readers of ONNX protobuf messages shared by the [importer](mod@super::import), the
//! [validator](mod@super::validate) and the engine's int8 path (`engine::spec`): node attributes
//! by name, a graph's initializers by name, and a tensor's values.
//!
//! A tensor's values are read the one way ONNX defines: from `raw_data` (little-endian, a
//! fixed number of bytes per element) when it has any, else from the typed field of its data
//! type (`float_data` for float, `int32_data` for int8 and int32, `int64_data` for int64). A
//! tensor is read only if it is of the type asked for, its dims are non-negative with a
//! product that fits in a `usize`, and its data holds exactly as many values as the dims give
//! (raw data: exactly that many bytes, no fewer and no trailing ones). Nothing here panics on
//! malformed data: every failure is a [`ReadError`] the caller turns into its own message.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// A node's attributes, looked up by name (the first one of that name, as every reader of
/// edgenet took it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs<'a>(pub(crate) &'a [pb::AttributeProto]);

impl<'a> Attrs<'a> {
    /// The attributes of `node`.
    pub(crate) fn of(node: &'a pb::NodeProto) -> Self {
        Attrs(&node.attribute)
    }

    /// The attribute `name`, if the node has one.
    pub(crate) fn get(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    /// The integer attribute `name` (its `i` field), `default` when absent.
    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    /// The float attribute `name` (its `f` field), `default` when absent.
    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    /// The integer-list attribute `name` (its `ints` field), if present.
    pub(crate) fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    /// The string attribute `name` (its `s` field, invalid UTF-8 replaced), if present.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

/// The initializers of `graph` by name (a later one of the same name replaces an earlier one).
pub(crate) fn initializers(graph: &pb::GraphProto) -> HashMap<&str, &pb::TensorProto> {
    graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// The number of values `t`'s dims give (1 for a scalar), if no dim is negative and the product
/// does not overflow a `usize` (checked after each dim).
pub(crate) fn element_count(t: &pb::TensorProto) -> Option<usize> {
    t.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

/// Why [`read_f32`] and the other readers returned no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The tensor's data type is not the one read.
    Type,
    /// A dim is negative, or their product overflows (see [`element_count`]).
    Dims,
    /// The data does not hold exactly the dims' count of values.
    Count {
        /// The whole values the data holds: the typed field's length, or the raw bytes
        /// divided by the element size (rounded down).
        values: usize,
        /// The length of `raw_data`, when the values are read from it.
        raw_bytes: Option<usize>,
    },
}

/// `t`'s values, if it is of type `data_type` and holds exactly as many as its dims give:
/// `raw_data` (little-endian, `N` bytes each, decoded by `from_le`) when it has any, else the
/// `typed` field (decoded by `value`).
fn read<T, U: Copy, const N: usize>(
    t: &pb::TensorProto,
    data_type: DataType,
    from_le: fn([u8; N]) -> T,
    typed: &[U],
    value: impl Fn(U) -> T,
) -> Result<Vec<T>, ReadError> {
    if t.data_type != data_type as i32 {
        return Err(ReadError::Type);
    }
    let n = element_count(t).ok_or(ReadError::Dims)?;
    if t.raw_data.is_empty() {
        if typed.len() != n {
            return Err(ReadError::Count { values: typed.len(), raw_bytes: None });
        }
        Ok(typed.iter().map(|&v| value(v)).collect())
    } else {
        let wrong = ReadError::Count { values: t.raw_data.len() / N, raw_bytes: Some(t.raw_data.len()) };
        if n.checked_mul(N) != Some(t.raw_data.len()) {
            return Err(wrong);
        }
        // `chunks_exact` gives only `N`-byte chunks: the conversion cannot fail.
        t.raw_data.chunks_exact(N).map(|c| <[u8; N]>::try_from(c).map(from_le)).collect::<Result<_, _>>().map_err(|_| wrong)
    }
}

/// The values of an int8 tensor (typed: `int32_data`, each truncated to 8 bits).
pub(crate) fn read_i8(t: &pb::TensorProto) -> Result<Vec<i8>, ReadError> {
    read(t, DataType::Int8, i8::from_le_bytes, &t.int32_data, |v| v as i8)
}

/// The values of an int32 tensor (typed: `int32_data`).
pub(crate) fn read_i32(t: &pb::TensorProto) -> Result<Vec<i32>, ReadError> {
    read(t, DataType::Int32, i32::from_le_bytes, &t.int32_data, |v| v)
}

/// The values of an int64 tensor (typed: `int64_data`).
pub(crate) fn read_i64(t: &pb::TensorProto) -> Result<Vec<i64>, ReadError> {
    read(t, DataType::Int64, i64::from_le_bytes, &t.int64_data, |v| v)
}

/// The values of a float32 tensor (typed: `float_data`).
pub(crate) fn read_f32(t: &pb::TensorProto) -> Result<Vec<f32>, ReadError> {
    read(t, DataType::Float, f32::from_le_bytes, &t.float_data, |v| v)
}

/// The one value of `v`, if it was read and holds exactly one.
pub(crate) fn scalar<T: Copy>(v: Result<Vec<T>, ReadError>) -> Option<T> {
    match v.ok()?.as_slice() {
        &[x] => Some(x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: DataType, dims: &[i64], raw: &[u8]) -> pb::TensorProto {
        pb::TensorProto { data_type: data_type as i32, dims: dims.to_vec(), raw_data: raw.to_vec(), ..Default::default() }
    }

    /// The readers return values only when the data holds exactly what the dims say, so that a
    /// malformed constant leaves its node to tract (or is refused by the importer) instead of
    /// feeding the kernels a wrong count.
    #[test]
    fn readers_check_the_data_against_the_dims() {
        let f = |v: f32| v.to_le_bytes();
        let two: Vec<u8> = [f(0.5), f(2.0)].concat();
        assert_eq!(read_f32(&tensor(DataType::Float, &[2], &two)), Ok(vec![0.5, 2.0]));
        assert_eq!(scalar(read_f32(&tensor(DataType::Float, &[], &two[..4]))), Some(0.5), "no dims: a scalar");
        assert_eq!(read_f32(&tensor(DataType::Float, &[3], &two)), Err(ReadError::Count { values: 2, raw_bytes: Some(8) }), "8 bytes for 3 values");
        assert_eq!(read_f32(&tensor(DataType::Float, &[2], &two[..7])), Err(ReadError::Count { values: 1, raw_bytes: Some(7) }), "not a multiple of 4");
        assert_eq!(read_f32(&tensor(DataType::Float, &[-2], &two)), Err(ReadError::Dims), "a negative dim");
        assert_eq!(read_f32(&tensor(DataType::Float, &[i64::MAX, 4], &two)), Err(ReadError::Dims), "dims overflowing");
        assert_eq!(read_f32(&tensor(DataType::Int32, &[2], &two)), Err(ReadError::Type), "another type");
        assert_eq!(read_i32(&tensor(DataType::Int32, &[1], &[1, 0, 0, 0, 2])), Err(ReadError::Count { values: 1, raw_bytes: Some(5) }), "a trailing byte");
        assert_eq!(read_i32(&tensor(DataType::Int32, &[2], &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])), Ok(vec![1, -1]));
        assert_eq!(read_i8(&tensor(DataType::Int8, &[3], &[1, 0xff, 7])), Ok(vec![1, -1, 7]));
        assert!(read_i8(&tensor(DataType::Int8, &[2, 2], &[1, 2, 3])).is_err());
        let mut i64s = [1i64, -2].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        assert_eq!(read_i64(&tensor(DataType::Int64, &[2], &i64s)), Ok(vec![1, -2]));
        i64s.push(0);
        assert_eq!(read_i64(&tensor(DataType::Int64, &[2], &i64s)), Err(ReadError::Count { values: 2, raw_bytes: Some(17) }));
        // Typed fields (no raw data) are counted the same way.
        let typed = pb::TensorProto { data_type: DataType::Int8 as i32, dims: vec![2], int32_data: vec![3, -4], ..Default::default() };
        assert_eq!(read_i8(&typed), Ok(vec![3, -4]));
        assert_eq!(read_i8(&pb::TensorProto { dims: vec![3], ..typed.clone() }), Err(ReadError::Count { values: 2, raw_bytes: None }));
        let floats = pb::TensorProto { data_type: DataType::Float as i32, dims: vec![1], float_data: vec![0.25], ..Default::default() };
        assert_eq!(scalar(read_f32(&floats)), Some(0.25));
        assert!(read_f32(&pb::TensorProto { float_data: vec![0.25, 1.0], ..floats }).is_err());
        let longs = pb::TensorProto { data_type: DataType::Int64 as i32, dims: vec![2], int64_data: vec![7, -8], ..Default::default() };
        assert_eq!(read_i64(&longs), Ok(vec![7, -8]));
        // Raw data, when present, is read instead of the typed field.
        assert_eq!(read_i64(&pb::TensorProto { raw_data: 5i64.to_le_bytes().to_vec(), dims: vec![1], ..longs }), Ok(vec![5]));
    }

    #[test]
    fn attributes_are_looked_up_by_name() {
        let attr = |name: &str, i: i64| pb::AttributeProto { name: name.into(), i, ints: vec![i, i], s: b"SAME".to_vec(), ..Default::default() };
        let attrs = [attr("group", 2), attr("group", 3), attr("axis", -1)];
        let a = Attrs(&attrs);
        assert_eq!(a.int("group", 1), 2, "the first of a name");
        assert_eq!(a.int("missing", 1), 1);
        assert_eq!(a.ints("axis"), Some(&[-1, -1][..]));
        assert_eq!(a.ints("missing"), None);
        assert_eq!(a.string("axis").as_deref(), Some("SAME"));
        assert_eq!(a.float("axis", 0.5), 0.0, "present, its f field");
    }
}
