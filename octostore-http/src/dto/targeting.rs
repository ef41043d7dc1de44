//! The JSON of flag targeting: a rule or segment's constraints as requests send them, segments,
//! evaluation contexts and answers. Rules, variants and prerequisites in answers are the
//! core's own shapes (`{property, operator, values, case_insensitive, inverted}`,
//! `{name, weight, payload: {type, value}}`, `{flag, variants}`).

use chrono::{DateTime, Utc};
use octostore_core::{
    Constraint, Error, Evaluation, EvaluationContext, Operator, Payload, PropertyName,
    PropertyValue, Reason, Result, Rule, Segment, SegmentName, Subject, VariantName,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::rfc3339;

/// A constraint as a request sends it: the string operators compare against `values`, the
/// others against one `value` (or a `values` of one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintBody {
    /// The context property compared (`subject` is the context's subject; `currentTime`, when
    /// the context lacks it, the store's clock).
    pub property: String,
    /// `IN`, `NOT_IN`, `STR_CONTAINS`, `STR_STARTS_WITH`, `STR_ENDS_WITH`, `NUM_EQ`, `NUM_GT`,
    /// `NUM_GTE`, `NUM_LT`, `NUM_LTE`, `DATE_BEFORE`, `DATE_AFTER`, `SEMVER_EQ`, `SEMVER_GT`,
    /// `SEMVER_LT`.
    pub operator: String,
    /// The values.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// The one value.
    #[serde(default)]
    pub value: Option<String>,
    /// String operators ignore case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Negates the comparison (a missing property still fails).
    #[serde(default)]
    pub inverted: bool,
}

impl ConstraintBody {
    /// The constraint, checked.
    pub fn into_constraint(self) -> Result<Constraint> {
        let values = match (self.values, self.value) {
            (Some(values), None) => values,
            (None, Some(value)) => vec![value],
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "values",
                    "give `values` or `value`, not both",
                ))
            }
            (None, None) => return Err(Error::invalid("values", "is required")),
        };
        Constraint::new(
            PropertyName::parse(&self.property)?,
            Operator::parse(&self.operator)?,
            values,
            self.case_insensitive,
            self.inverted,
        )
    }
}

/// Constraints as a request sends them, checked.
pub fn constraints_of(bodies: Vec<ConstraintBody>) -> Result<Vec<Constraint>> {
    bodies
        .into_iter()
        .map(ConstraintBody::into_constraint)
        .collect()
}

/// A rule as `POST /flags/{name}/rules` sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Conditions on the context, all of which must hold.
    #[serde(default)]
    pub constraints: Vec<ConstraintBody>,
    /// Segments whose constraints must hold too.
    #[serde(default)]
    pub segments: Vec<String>,
    /// The share of matching subjects turned on (all, if none).
    #[serde(default)]
    pub percentage: Option<u8>,
    /// Where the rule goes: 0 first (last, if none).
    #[serde(default)]
    pub position: Option<usize>,
}

impl RuleBody {
    /// The rule, checked, and where it goes.
    pub fn into_rule(self) -> Result<(Rule, Option<usize>)> {
        let segments = self
            .segments
            .iter()
            .map(|s| SegmentName::parse(s))
            .collect::<Result<_>>()?;
        let rule = Rule::new(constraints_of(self.constraints)?, segments, self.percentage)?;
        Ok((rule, self.position))
    }
}

/// A segment: its answer, and an item of a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Its name.
    pub name: String,
    /// What it is for; omitted when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The constraints, all of which a context must meet.
    pub constraints: Vec<Constraint>,
    /// When it was first set (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it was last set (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Segment> for SegmentInfo {
    fn from(s: &Segment) -> Self {
        Self {
            name: s.name.to_string(),
            description: s.description.clone(),
            constraints: s.constraints.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

impl SegmentInfo {
    /// The segment.
    pub fn into_segment(self) -> Result<Segment> {
        Ok(Segment {
            name: SegmentName::parse(&self.name)?,
            description: self.description,
            constraints: self.constraints,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The caller's segments (`GET /segments`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SegmentList {
    /// Each segment, by name.
    pub segments: Vec<SegmentInfo>,
}

/// The key of an evaluation context that holds its subject, as OpenFeature names it.
pub const TARGETING_KEY: &str = "targetingKey";

/// An evaluation context from its JSON object: `targetingKey` (or `subject`) is the subject,
/// every other member a property (a string, number or boolean; `null` is no property).
pub fn context_of(object: &Map<String, Value>) -> Result<EvaluationContext> {
    let mut context = EvaluationContext::default();
    for (key, value) in object {
        if key == TARGETING_KEY || key == "subject" {
            let subject = match value {
                Value::String(s) => Subject::parse(s)?,
                _ => return Err(Error::invalid("context", format!("{key} must be a string"))),
            };
            if context.subject.as_ref().is_some_and(|s| *s != subject) {
                return Err(Error::invalid(
                    "context",
                    "targetingKey and subject name two different subjects",
                ));
            }
            context.subject = Some(subject);
            continue;
        }
        let name = PropertyName::parse(key)
            .map_err(|e| Error::invalid("context", format!("property {key:?}: {e}")))?;
        let value = match value {
            Value::Null => continue,
            Value::String(s) => PropertyValue::String(s.clone()),
            Value::Bool(b) => PropertyValue::Boolean(*b),
            Value::Number(n) => PropertyValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::Array(_) | Value::Object(_) => {
                return Err(Error::invalid(
                    "context",
                    format!("property {key:?} must be a string, number or boolean"),
                ))
            }
        };
        context.properties.insert(name, value);
    }
    Ok(context)
}

/// The JSON object of an evaluation context, as [`context_of`] reads it.
pub fn context_json(context: &EvaluationContext) -> Map<String, Value> {
    let mut object = Map::new();
    if let Some(subject) = &context.subject {
        object.insert(TARGETING_KEY.into(), subject.as_str().into());
    }
    for (name, value) in &context.properties {
        let value = match value {
            PropertyValue::String(s) => Value::from(s.as_str()),
            PropertyValue::Number(n) => Value::from(*n),
            PropertyValue::Boolean(b) => Value::from(*b),
        };
        object.insert(name.to_string(), value);
    }
    object
}

/// A flag evaluated for a context (`POST /flags/{name}/evaluate`).
#[derive(Debug, Serialize, Deserialize)]
pub struct EvaluationInfo {
    /// The flag's name.
    pub name: String,
    /// Whether the flag is on for the context.
    pub enabled: bool,
    /// The value: the variant's payload when on; whether it is on for a flag whose variants
    /// carry none; omitted for a flag with payloads that is off (use your default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value's type: `boolean`, `string`, `number` or `json`; omitted with the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    /// The variant assigned; omitted when off or the flag has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Why: `STATIC`, `SPLIT`, `TARGETING_MATCH`, `DEFAULT`, `DISABLED` or
    /// `PREREQUISITE_FAILED`.
    pub reason: String,
}

impl EvaluationInfo {
    /// The answer for `name`.
    pub fn new(name: &str, evaluation: &Evaluation) -> Self {
        Self {
            name: name.to_owned(),
            enabled: evaluation.enabled,
            value: evaluation.value.as_ref().map(payload_value),
            value_type: evaluation.value.as_ref().map(|p| p.type_name().to_owned()),
            variant: evaluation.variant.as_ref().map(|v| v.to_string()),
            reason: evaluation.reason.name().to_owned(),
        }
    }

    /// The evaluation.
    pub fn into_evaluation(self) -> Result<Evaluation> {
        let value = match (self.value_type.as_deref(), self.value) {
            (None, _) | (_, None) => None,
            (Some(kind), Some(value)) => Some(payload_of(kind, value)?),
        };
        Ok(Evaluation {
            enabled: self.enabled,
            variant: self
                .variant
                .as_deref()
                .map(VariantName::parse)
                .transpose()?,
            value,
            reason: reason_of(&self.reason)?,
        })
    }
}

/// A payload's value alone.
pub fn payload_value(payload: &Payload) -> Value {
    match payload {
        Payload::String(s) => Value::from(s.as_str()),
        Payload::Number(n) => Value::Number(n.clone()),
        Payload::Boolean(b) => Value::Bool(*b),
        Payload::Json(v) => v.clone(),
    }
}

fn payload_of(kind: &str, value: Value) -> Result<Payload> {
    let wrong = || Error::invalid("value", format!("is not of type {kind}"));
    Ok(match (kind, value) {
        ("string", Value::String(s)) => Payload::String(s),
        ("number", Value::Number(n)) => Payload::Number(n),
        ("boolean", Value::Bool(b)) => Payload::Boolean(b),
        ("json", v) => Payload::Json(v),
        _ => return Err(wrong()),
    })
}

fn reason_of(name: &str) -> Result<Reason> {
    Reason::parse(name).ok_or_else(|| Error::invalid("reason", format!("unknown reason {name:?}")))
}

/// OFREP's answer for one flag evaluated: the value (omitted when the flag is off and has
/// payloads, so the caller's default stands), the variant (`null` when none) and the reason
/// (OpenFeature's; `PREREQUISITE_FAILED` is sent as `DISABLED`, which OpenFeature's SDKs
/// know, and OctoStore's own reason is always `metadata.reason`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfrepEvaluation {
    /// The flag.
    pub key: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// OpenFeature's reason.
    pub reason: String,
    /// The variant, or `null`.
    pub variant: Option<String>,
    /// `{"reason": <OctoStore's own reason>, "enabled": <whether the flag is on>}`.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl OfrepEvaluation {
    /// The answer for `key`.
    pub fn new(key: &str, evaluation: &Evaluation) -> Self {
        let reason = evaluation.reason.in_open_feature();
        let mut metadata = Map::new();
        metadata.insert("reason".into(), evaluation.reason.name().into());
        metadata.insert("enabled".into(), evaluation.enabled.into());
        Self {
            key: key.to_owned(),
            value: evaluation.value.as_ref().map(payload_value),
            reason: reason.name().to_owned(),
            variant: evaluation.variant.as_ref().map(|v| v.to_string()),
            metadata,
        }
    }

    /// The evaluation, as `metadata` says it (its value's type read from its JSON: an object
    /// or array is `json`).
    pub fn into_evaluation(self) -> Result<Evaluation> {
        let own_reason = self.metadata.get("reason").and_then(Value::as_str);
        let reason = reason_of(own_reason.unwrap_or(&self.reason))?;
        let enabled = self.metadata.get("enabled").and_then(Value::as_bool);
        Ok(Evaluation {
            enabled: enabled.ok_or_else(|| Error::invalid("metadata", "has no `enabled`"))?,
            variant: self
                .variant
                .as_deref()
                .map(VariantName::parse)
                .transpose()?,
            value: self.value.map(|v| match v {
                Value::String(s) => Payload::String(s),
                Value::Number(n) => Payload::Number(n),
                Value::Bool(b) => Payload::Boolean(b),
                v => Payload::Json(v),
            }),
            reason,
        })
    }
}

/// OFREP's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OfrepErrorCode {
    /// 400: the request is not what OFREP expects (the body, the context's JSON).
    ParseError,
    /// 400: the flag needs a subject and the context has no `targetingKey`.
    TargetingKeyMissing,
    /// 400: a context property is of a kind no rule can compare.
    InvalidContext,
    /// 404: no such flag.
    FlagNotFound,
    /// The value is not of the type asked: an OpenFeature provider's own, never sent by
    /// the server (it answers the value with its JSON type).
    TypeMismatch,
    /// Anything else.
    General,
}

/// OFREP's failure of one flag (`404`, `400`, or an item of a bulk answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfrepFailure {
    /// The flag.
    pub key: String,
    /// Why, for a program.
    pub error_code: OfrepErrorCode,
    /// Why, in words.
    pub error_details: String,
}

/// One flag of a bulk answer: its evaluation or its failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OfrepFlag {
    /// The failure (tried first: it has `errorCode`).
    Failure(OfrepFailure),
    /// The evaluation.
    Evaluation(OfrepEvaluation),
}

/// OFREP's bulk answer: every flag of the caller, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfrepBulk {
    /// Each flag.
    pub flags: Vec<OfrepFlag>,
}
