//! A flag's targeting as storage keeps it: ordered rules of constraints on the evaluation
//! context, named segments of constraints that rules share, weighted variants with payloads,
//! and the flags it requires. Each is checked when made (`Constraint::new`, `Variant::new`,
//! `Targeting::new`), so a stored one is always within bounds; what they answer for a context
//! is the rule of `rules/flag_eval.rs`.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::values::error::{Error, Result};
use crate::values::names::{FlagName, PropertyName, SegmentName, VariantName};

/// Most constraints in one rule or segment.
pub const MAX_CONSTRAINTS: usize = 50;
/// Most values one constraint compares against.
pub const MAX_VALUES: usize = 1000;
/// Longest value a constraint compares against, in characters.
pub const MAX_VALUE_CHARS: usize = 1000;
/// Most rules of one flag.
pub const MAX_RULES: usize = 100;
/// Most segments one rule references.
pub const MAX_RULE_SEGMENTS: usize = 10;
/// Most variants of one flag.
pub const MAX_VARIANTS: usize = 100;
/// Largest total of a flag's variant weights.
pub const MAX_TOTAL_WEIGHT: u32 = 100_000;
/// Largest payload of one variant, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Most flags one flag requires.
pub const MAX_PREREQUISITES: usize = 10;

/// How a constraint compares a context property with its values; Unleash's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    /// The property is one of the values.
    In,
    /// The property is none of the values.
    NotIn,
    /// The property contains one of the values.
    StrContains,
    /// The property starts with one of the values.
    StrStartsWith,
    /// The property ends with one of the values.
    StrEndsWith,
    /// The property, a number, equals the value.
    NumEq,
    /// The property, a number, is greater than the value.
    NumGt,
    /// ... greater than or equal to the value.
    NumGte,
    /// ... less than the value.
    NumLt,
    /// ... less than or equal to the value.
    NumLte,
    /// The property, an RFC 3339 instant (or a date), is before the value.
    DateBefore,
    /// ... after the value.
    DateAfter,
    /// The property, a semantic version, equals the value.
    SemverEq,
    /// ... is greater than the value (a pre-release is less than its release).
    SemverGt,
    /// ... is less than the value.
    SemverLt,
}

impl Operator {
    /// Every operator, in the order above.
    pub const ALL: [Operator; 15] = [
        Operator::In,
        Operator::NotIn,
        Operator::StrContains,
        Operator::StrStartsWith,
        Operator::StrEndsWith,
        Operator::NumEq,
        Operator::NumGt,
        Operator::NumGte,
        Operator::NumLt,
        Operator::NumLte,
        Operator::DateBefore,
        Operator::DateAfter,
        Operator::SemverEq,
        Operator::SemverGt,
        Operator::SemverLt,
    ];

    /// Its name, as Unleash spells it (`STR_CONTAINS`).
    pub fn name(self) -> &'static str {
        match self {
            Operator::In => "IN",
            Operator::NotIn => "NOT_IN",
            Operator::StrContains => "STR_CONTAINS",
            Operator::StrStartsWith => "STR_STARTS_WITH",
            Operator::StrEndsWith => "STR_ENDS_WITH",
            Operator::NumEq => "NUM_EQ",
            Operator::NumGt => "NUM_GT",
            Operator::NumGte => "NUM_GTE",
            Operator::NumLt => "NUM_LT",
            Operator::NumLte => "NUM_LTE",
            Operator::DateBefore => "DATE_BEFORE",
            Operator::DateAfter => "DATE_AFTER",
            Operator::SemverEq => "SEMVER_EQ",
            Operator::SemverGt => "SEMVER_GT",
            Operator::SemverLt => "SEMVER_LT",
        }
    }

    /// The operator named `name`; the error names the field `operator`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|o| o.name()).collect();
                Error::invalid(
                    "operator",
                    format!("must be one of {}, got {name:?}", names.join(", ")),
                )
            })
    }

    /// Whether it compares against a list of values (the string operators) rather than one.
    pub fn takes_list(self) -> bool {
        matches!(
            self,
            Operator::In
                | Operator::NotIn
                | Operator::StrContains
                | Operator::StrStartsWith
                | Operator::StrEndsWith
        )
    }
}

/// What a constraint compares against, parsed once when the constraint is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// The values of a string operator (lower-cased when the constraint ignores case).
    Strings(Box<[Arc<str>]>),
    /// The value of a number operator.
    Number(f64),
    /// The value of a date operator.
    Date(DateTime<Utc>),
    /// The value of a semantic-version operator.
    Semver(semver::Version),
}

/// One condition on a context property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredConstraint", into = "StoredConstraint")]
pub struct Constraint {
    property: PropertyName,
    operator: Operator,
    values: Box<[Arc<str>]>,
    case_insensitive: bool,
    inverted: bool,
    operand: Operand,
}

impl Constraint {
    /// A constraint, its values checked for the operator: a list of 1 to
    /// [`MAX_VALUES`] for the string operators, exactly one number, instant or date, or
    /// semantic version for the others. `inverted` negates the comparison, but a property
    /// missing from the context fails the constraint either way.
    pub fn new(
        property: PropertyName,
        operator: Operator,
        values: Vec<String>,
        case_insensitive: bool,
        inverted: bool,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("values", reason);
        if values.is_empty() || values.len() > MAX_VALUES {
            return Err(invalid(format!(
                "must hold 1 to {MAX_VALUES} values, got {}",
                values.len()
            )));
        }
        if let Some(long) = values.iter().find(|v| v.chars().count() > MAX_VALUE_CHARS) {
            return Err(invalid(format!(
                "each value may be at most {MAX_VALUE_CHARS} characters, got {}",
                long.chars().count()
            )));
        }
        if case_insensitive && !operator.takes_list() {
            return Err(Error::invalid(
                "case_insensitive",
                format!(
                    "applies to the string operators only, not {}",
                    operator.name()
                ),
            ));
        }
        if !operator.takes_list() && values.len() != 1 {
            return Err(invalid(format!(
                "{} compares against exactly one value, got {}",
                operator.name(),
                values.len()
            )));
        }
        let values: Box<[Arc<str>]> = values.into_iter().map(Arc::from).collect();
        let first = &*values[0];
        let operand = match operator {
            // Folded once here; compared as given, they are the values themselves.
            o if o.takes_list() && case_insensitive => {
                Operand::Strings(values.iter().map(|v| v.to_lowercase().into()).collect())
            }
            o if o.takes_list() => Operand::Strings(values.clone()),
            Operator::NumEq
            | Operator::NumGt
            | Operator::NumGte
            | Operator::NumLt
            | Operator::NumLte => Operand::Number(
                parse_number(first).ok_or_else(|| invalid(format!("{first:?} is not a number")))?,
            ),
            Operator::DateBefore | Operator::DateAfter => {
                Operand::Date(parse_date(first).ok_or_else(|| {
                    invalid(format!(
                        "{first:?} is not an RFC 3339 instant (2026-12-24T18:00:00Z) or date"
                    ))
                })?)
            }
            _ => Operand::Semver(
                semver::Version::parse(first)
                    .map_err(|e| invalid(format!("{first:?} is not a semantic version: {e}")))?,
            ),
        };
        Ok(Self {
            property,
            operator,
            values,
            case_insensitive,
            inverted,
            operand,
        })
    }

    /// The context property compared.
    pub fn property(&self) -> &PropertyName {
        &self.property
    }
    /// How it is compared.
    pub fn operator(&self) -> Operator {
        self.operator
    }
    /// The values as given.
    pub fn values(&self) -> &[Arc<str>] {
        &self.values
    }
    /// Whether string operators ignore case.
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }
    /// Whether the comparison is negated.
    pub fn inverted(&self) -> bool {
        self.inverted
    }
    /// The values, parsed for the operator.
    pub fn operand(&self) -> &Operand {
        &self.operand
    }
}

/// Text as a comparison sees it: lower-cased when it ignores case, else as it is (no copy).
pub fn fold(text: &str, case_insensitive: bool) -> Cow<'_, str> {
    if case_insensitive {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// A number as a constraint reads one from text.
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An instant as a constraint reads one from text: RFC 3339, or a date meaning its midnight UTC.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
}

/// A constraint as stored: the values as given, parsed again when read.
#[derive(Serialize, Deserialize)]
struct StoredConstraint {
    property: PropertyName,
    operator: Operator,
    values: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    case_insensitive: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    inverted: bool,
}

impl TryFrom<StoredConstraint> for Constraint {
    type Error = Error;
    fn try_from(c: StoredConstraint) -> Result<Self> {
        Constraint::new(
            c.property,
            c.operator,
            c.values,
            c.case_insensitive,
            c.inverted,
        )
    }
}

impl From<Constraint> for StoredConstraint {
    fn from(c: Constraint) -> Self {
        StoredConstraint {
            property: c.property,
            operator: c.operator,
            values: c.values.iter().map(|v| v.to_string()).collect(),
            case_insensitive: c.case_insensitive,
            inverted: c.inverted,
        }
    }
}

/// Checks a list of constraints' length.
pub fn check_constraints(constraints: &[Constraint]) -> Result<()> {
    if constraints.len() > MAX_CONSTRAINTS {
        return Err(Error::invalid(
            "constraints",
            format!(
                "may hold at most {MAX_CONSTRAINTS} constraints, got {}",
                constraints.len()
            ),
        ));
    }
    Ok(())
}

/// One rule of a flag: who it matches (every constraint, and every constraint of every
/// segment it names) and which of them it turns on (a rollout by subject).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Conditions on the context, all of which must hold.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Segments whose constraints must all hold too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentName>,
    /// The share of matching subjects turned on, by the flag's bucket (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
}

impl Rule {
    /// A rule, checked: at most [`MAX_CONSTRAINTS`] constraints and [`MAX_RULE_SEGMENTS`]
    /// segments, and a percentage of 0 to 100.
    pub fn new(
        constraints: Vec<Constraint>,
        segments: Vec<SegmentName>,
        percentage: Option<u8>,
    ) -> Result<Self> {
        check_constraints(&constraints)?;
        if segments.len() > MAX_RULE_SEGMENTS {
            return Err(Error::invalid(
                "segments",
                format!(
                    "a rule may name at most {MAX_RULE_SEGMENTS} segments, got {}",
                    segments.len()
                ),
            ));
        }
        if let Some((i, twice)) = segments
            .iter()
            .enumerate()
            .find(|(i, s)| segments[..*i].contains(s))
        {
            return Err(Error::invalid(
                "segments",
                format!("segment {twice} is named twice (at {i})"),
            ));
        }
        if percentage.is_some_and(|p| p > 100) {
            return Err(Error::invalid("percentage", "must be 0 to 100"));
        }
        Ok(Self {
            constraints,
            segments,
            percentage,
        })
    }
}

/// What a variant answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Payload {
    /// A string.
    String(String),
    /// A number, an integer or not as given (OpenFeature's integer and float differ).
    Number(serde_json::Number),
    /// A boolean.
    Boolean(bool),
    /// Any JSON value.
    Json(serde_json::Value),
}

impl Payload {
    /// Its type's name: `string`, `number`, `boolean` or `json`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::String(_) => "string",
            Payload::Number(_) => "number",
            Payload::Boolean(_) => "boolean",
            Payload::Json(_) => "json",
        }
    }
}

/// One of a flag's variants: a subject turned on gets the variant its bucket falls in,
/// weighted as Unleash weighs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Its name.
    pub name: VariantName,
    /// Its share of the subjects turned on, against the sum of every variant's weight.
    pub weight: u32,
    /// What it answers (`None`: the flag answers only on or off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

/// A flag the flag requires: on for the subject (and, when `variants` is not empty, in one of
/// them), or the flag is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prerequisite {
    /// The flag required.
    pub flag: FlagName,
    /// The variants of it that satisfy (empty: any, as long as it is on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantName>,
}

/// Everything a flag answers beyond on, off and one percentage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Targeting {
    /// Tried in order; the first that matches a context and rolls out to its subject turns
    /// the flag on. With none, the flag is on for every subject its percentage admits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Assigned to the subjects turned on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// Flags that must be on first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
}

impl Targeting {
    /// Whether it adds nothing to on, off and a percentage.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.variants.is_empty() && self.prerequisites.is_empty()
    }

    /// Checks the lists' bounds: rules, variants (unique names, one payload type or none, a
    /// total weight of 1 to [`MAX_TOTAL_WEIGHT`]) and prerequisites (no flag twice). Whether
    /// the segments and flags named exist is the rule's to check, in a transaction.
    pub fn check(&self) -> Result<()> {
        if self.rules.len() > MAX_RULES {
            return Err(Error::invalid(
                "rules",
                format!(
                    "a flag may have at most {MAX_RULES} rules, got {}",
                    self.rules.len()
                ),
            ));
        }
        check_variants(&self.variants)?;
        let prerequisites = &self.prerequisites;
        if prerequisites.len() > MAX_PREREQUISITES {
            return Err(Error::invalid(
                "prerequisites",
                format!(
                    "a flag may require at most {MAX_PREREQUISITES} flags, got {}",
                    prerequisites.len()
                ),
            ));
        }
        for (i, p) in prerequisites.iter().enumerate() {
            if prerequisites[..i].iter().any(|q| q.flag == p.flag) {
                return Err(Error::invalid(
                    "prerequisites",
                    format!("flag {} is required twice", p.flag),
                ));
            }
        }
        Ok(())
    }

    /// The type of the variants' payloads, if they have any.
    pub fn payload_type(&self) -> Option<&'static str> {
        self.variants
            .iter()
            .find_map(|v| v.payload.as_ref())
            .map(Payload::type_name)
    }
}

fn check_variants(variants: &[Variant]) -> Result<()> {
    let invalid = |reason: String| Error::invalid("variants", reason);
    if variants.is_empty() {
        return Ok(());
    }
    if variants.len() > MAX_VARIANTS {
        return Err(invalid(format!(
            "a flag may have at most {MAX_VARIANTS} variants, got {}",
            variants.len()
        )));
    }
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    if total == 0 || total > u64::from(MAX_TOTAL_WEIGHT) {
        return Err(invalid(format!(
            "the weights must add up to 1 to {MAX_TOTAL_WEIGHT}, got {total}"
        )));
    }
    let first_type = variants[0].payload.as_ref().map(Payload::type_name);
    for (i, v) in variants.iter().enumerate() {
        if variants[..i].iter().any(|w| w.name == v.name) {
            return Err(invalid(format!("variant {:?} is named twice", v.name)));
        }
        let this_type = v.payload.as_ref().map(Payload::type_name);
        if this_type != first_type {
            return Err(invalid(format!(
                "every variant's payload must be of one type (or none have one): {:?} is {}, \
                 {:?} is {}",
                variants[0].name,
                first_type.unwrap_or("none"),
                v.name,
                this_type.unwrap_or("none"),
            )));
        }
        if let Some(payload) = &v.payload {
            let size = serde_json::to_vec(payload).map_or(usize::MAX, |b| b.len());
            if size > MAX_PAYLOAD_BYTES {
                return Err(Error::TooLarge {
                    field: "payload",
                    size,
                    limit: MAX_PAYLOAD_BYTES,
                });
            }
        }
    }
    Ok(())
}

/// A named set of constraints that rules of any of its owner's flags share.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its name.
    pub name: SegmentName,
    /// What it is for, in words.
    pub description: Option<String>,
    /// The constraints, all of which a context must meet.
    pub constraints: Vec<Constraint>,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

/// The stored form of a flag's targeting and of a segment's constraints: JSON, the text of the
/// SQL backends' column.
pub fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("targeting serializes")
}

/// Reads what [`encode`] wrote, checking it again.
pub fn decode<T: for<'a> Deserialize<'a>>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage_caused("a stored flag targeting is unreadable", e))
}
