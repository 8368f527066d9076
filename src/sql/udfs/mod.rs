//! SQL functions over the dataset, one a file. Each maps a string column row by row.

pub mod first_verb;
pub mod grapheme_len;
pub mod lang_name;
pub mod script_of;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::error::Result;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Registers every function with the session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(lang_name::udf());
    ctx.register_udf(script_of::udf());
    ctx.register_udf(grapheme_len::udf());
    ctx.register_udf(first_verb::udf());
}

/// Casts the argument to Utf8 (it may be a view or large string) as an array.
fn strings(arg: &ColumnarValue) -> Result<(ArrayRef, bool)> {
    let scalar = matches!(arg, ColumnarValue::Scalar(_));
    let array = arg.to_array(1)?;
    let array = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
    Ok((array, scalar))
}

fn finish(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&array, 0)?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// A one-argument string → string function; `None` becomes NULL.
pub(crate) fn string_to_string(name: &str, f: fn(&str) -> Option<String>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let (array, scalar) = strings(&args[0])?;
            let input = as_string_array(&array)?;
            let out: StringArray = input.iter().map(|v| v.and_then(f)).collect();
            finish(Arc::new(out), scalar)
        }),
    )
}

/// A one-argument string → integer function.
pub(crate) fn string_to_int(name: &str, f: fn(&str) -> i64) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let (array, scalar) = strings(&args[0])?;
            let input = as_string_array(&array)?;
            let out: Int64Array =
                (0..input.len()).map(|i| input.is_valid(i).then(|| f(input.value(i)))).collect();
            finish(Arc::new(out), scalar)
        }),
    )
}
