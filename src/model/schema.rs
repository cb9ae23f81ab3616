//! Feature schemas 1 and 2: the per-candidate features the engine computes
//! for a ranking model, and the contract a model must meet to be accepted
//! (see docs/MODELS.md).
//!
//! A model declares the schema it was trained on in its ONNX metadata
//! (`recwal.feature_schema`, "1" or "2"); it takes one input `features`
//! (float32, `[N, width]`, N free, width 6 for schema 1 and 12 for schema
//! 2) and gives one output `score` (float32, `[N]` or `[N, 1]`), one score
//! per candidate row, higher is better. Schema 2's first six columns are
//! schema 1's, so models of both serve side by side.

/// The newest schema this engine computes.
pub const FEATURE_SCHEMA_VERSION: u32 = 2;
/// Every schema this engine computes.
pub const FEATURE_SCHEMAS: [u32; 2] = [1, 2];
/// The ONNX metadata key a model declares its schema version under.
pub const SCHEMA_METADATA_KEY: &str = "recwal.feature_schema";
/// Name of the model's input.
pub const INPUT_NAME: &str = "features";
/// Name of the model's output.
pub const OUTPUT_NAME: &str = "score";
/// Features per candidate in schema 1.
pub const FEATURES_V1: usize = 6;
/// Features per candidate in schema 2.
pub const FEATURES_V2: usize = 12;
/// Features per candidate in schema 1 (the name models were built with).
pub const FEATURES: usize = FEATURES_V1;
/// The features' names, in column order: schema 2's; schema 1 has the
/// first `FEATURES_V1`.
pub const FEATURE_NAMES: [&str; FEATURES_V2] = [
    "strategy_score",
    "usercf",
    "item_rank",
    "popularity",
    "item_users",
    "user_activity",
    "item_model",
    "strategy_rank",
    "item_mean_value",
    "user_mean_value",
    "category_match",
    "item_age_days",
];

/// Columns of `schema` (a version this engine computes; others get the
/// newest's width, which `check` never lets a model declare).
pub const fn width(schema: u32) -> usize {
    match schema {
        1 => FEATURES_V1,
        _ => FEATURES_V2,
    }
}

/// Rows of the warm-up batch every model must score (finite outputs) before
/// it can be added or activated.
pub const WARMUP_ROWS: usize = 8;

/// The warm-up batch of `width` columns: fixed, so a model's acceptance
/// never depends on the data in the engine. Row i, column j = ((7i + 3j)
/// mod 11) / 10.
pub(crate) fn warmup_batch(width: usize) -> Vec<f32> {
    (0..WARMUP_ROWS).flat_map(|row| (0..width).map(move |col| ((row * 7 + col * 3) % 11) as f32 / 10.0)).collect()
}

/// What a loaded model exposes, as far as the contract cares.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Signature {
    /// `recwal.feature_schema` metadata, if present.
    pub schema: Option<String>,
    /// (name, is float32, shape with -1 for free dimensions).
    pub inputs: Vec<(String, bool, Vec<i64>)>,
    /// Same, for the outputs.
    pub outputs: Vec<(String, bool, Vec<i64>)>,
}

/// Checks a model's signature against the schema it declares; the error
/// says exactly what does not match. Returns the schema.
pub(crate) fn check(signature: &Signature) -> Result<u32, String> {
    let known = FEATURE_SCHEMAS.map(|schema| schema.to_string()).join(", ");
    let schema = match signature.schema.as_deref() {
        None => {
            return Err(format!(
                "the model has no `{SCHEMA_METADATA_KEY}` metadata entry; this engine computes feature schemas \
                 {known} and only accepts models that declare one"
            ))
        }
        Some(declared) => match FEATURE_SCHEMAS.iter().find(|schema| declared.trim() == schema.to_string()) {
            Some(&schema) => schema,
            None => {
                return Err(format!(
                    "the model declares feature schema {declared:?}; this engine computes feature schemas {known}"
                ))
            }
        },
    };
    let features = width(schema);
    let names = FEATURE_NAMES[..features].join(", ");
    let [(name, float, shape)] = signature.inputs.as_slice() else {
        let names: Vec<&str> = signature.inputs.iter().map(|input| input.0.as_str()).collect();
        return Err(format!("the model must have exactly one input `{INPUT_NAME}`; it has {names:?}"));
    };
    if name != INPUT_NAME {
        return Err(format!("the model's input is named `{name}`; schema {schema} needs `{INPUT_NAME}`"));
    }
    if !float {
        return Err(format!("input `{INPUT_NAME}` must be float32"));
    }
    if shape.len() != 2 || shape[1] != features as i64 || (shape[0] != -1 && shape[0] < 1) {
        return Err(format!(
            "input `{INPUT_NAME}` has shape {}; schema {schema} needs [N, {features}] ({names})",
            show_shape(shape),
        ));
    }
    if shape[0] != -1 {
        return Err(format!(
            "input `{INPUT_NAME}` has a fixed batch size of {}; the batch dimension must be free ([N, {features}])",
            shape[0]
        ));
    }
    let Some((_, float, shape)) = signature.outputs.iter().find(|output| output.0 == OUTPUT_NAME) else {
        let names: Vec<&str> = signature.outputs.iter().map(|output| output.0.as_str()).collect();
        return Err(format!("the model has no output `{OUTPUT_NAME}`; its outputs are {names:?}"));
    };
    if !float {
        return Err(format!("output `{OUTPUT_NAME}` must be float32"));
    }
    if !matches!(shape.as_slice(), [_] | [_, 1]) {
        return Err(format!("output `{OUTPUT_NAME}` has shape {}; it must be [N] or [N, 1]", show_shape(shape)));
    }
    Ok(schema)
}

fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|&dim| if dim < 0 { "N".to_string() } else { dim.to_string() }).collect();
    format!("[{}]", dims.join(", "))
}

/// Checks a model's scores for `rows` rows: one finite score per row.
pub(crate) fn check_scores(scores: &[f32], rows: usize) -> Result<(), String> {
    if scores.len() != rows {
        return Err(format!("the model gave {} scores for {rows} rows", scores.len()));
    }
    if let Some(at) = scores.iter().position(|score| !score.is_finite()) {
        return Err(format!("the model's score for row {at} is {} (scores must be finite)", scores[at]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Signature {
        Signature {
            schema: Some("1".into()),
            inputs: vec![("features".into(), true, vec![-1, 6])],
            outputs: vec![("score".into(), true, vec![-1])],
        }
    }

    #[test]
    fn the_contract_names_what_is_wrong() {
        assert_eq!(check(&good()), Ok(1));
        let mut column = good();
        column.outputs[0].2 = vec![-1, 1];
        assert_eq!(check(&column), Ok(1));
        let mut v2 = good();
        v2.schema = Some("2".into());
        v2.inputs[0].2 = vec![-1, 12];
        assert_eq!(check(&v2), Ok(2));
        v2.inputs[0].2 = vec![-1, 6];
        assert!(check(&v2).err().unwrap_or_default().contains("schema 2 needs [N, 12]"));
        type Breaker = fn(&mut Signature);
        let cases: [(Breaker, &str); 7] = [
            (|s| s.schema = None, "no `recwal.feature_schema`"),
            (|s| s.schema = Some("99".into()), "declares feature schema \"99\""),
            (|s| s.inputs[0].0 = "x".into(), "input is named `x`"),
            (|s| s.inputs[0].2 = vec![-1, 5], "has shape [N, 5]"),
            (|s| s.inputs[0].2 = vec![8, 6], "fixed batch size of 8"),
            (|s| s.outputs[0].0 = "y".into(), "no output `score`"),
            (|s| s.outputs[0].2 = vec![-1, 2], "must be [N] or [N, 1]"),
        ];
        for (break_it, expected) in cases {
            let mut signature = good();
            break_it(&mut signature);
            let err = check(&signature).err().unwrap_or_default();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn scores_must_be_finite_and_one_per_row() {
        assert!(check_scores(&[1.0, 2.0], 2).is_ok());
        assert!(check_scores(&[1.0], 2).is_err());
        assert!(check_scores(&[1.0, f32::NAN], 2).err().unwrap_or_default().contains("row 1 is NaN"));
    }

    #[test]
    fn the_warmup_batch_is_fixed_and_in_range() {
        let batch = warmup_batch(FEATURES);
        assert_eq!(batch.len(), WARMUP_ROWS * FEATURES);
        assert_eq!(&warmup_batch(FEATURES_V2)[..FEATURES], &batch[..FEATURES]);
        assert_eq!(&batch[..FEATURES], &[0.0, 0.3, 0.6, 0.9, 0.1, 0.4]);
        assert!(batch.iter().all(|&value| (0.0..=1.0).contains(&value)));
    }
}
