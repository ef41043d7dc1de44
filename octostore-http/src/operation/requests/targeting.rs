//! The requests of flag targeting: rules, variants, prerequisites, segments, evaluation for a
//! context, and OpenFeature's remote evaluation (OFREP).

use octostore_core::{
    Error, EvaluationContext, FlagName, Prerequisite, Result, Rule, SegmentName, Variant,
};
use serde_json::{json, Value};

use super::{Encoded, Endpoint, Received};
use crate::dto::{
    constraints_of, context_json, context_of, ConstraintBody, Deleted, EvaluationInfo, FlagInfo,
    OfrepBulk, OfrepEvaluation, RuleBody, SegmentInfo, SegmentList,
};
use crate::operation::Operation;

named! {
    /// `GET /flags/{name}/targeting`.
    GetFlagTargeting(FlagName): GetFlagTargeting -> FlagInfo;
    /// `GET /segments/{name}`.
    GetSegment(SegmentName): GetSegment -> SegmentInfo;
    /// `DELETE /segments/{name}`.
    DeleteSegment(SegmentName): DeleteSegment -> Deleted;
}

bare! {
    /// `GET /segments`.
    ListSegments: ListSegments -> SegmentList;
}

/// `POST /flags/{name}/rules`: a rule added (last, or at `position`).
#[derive(Debug, Clone, PartialEq)]
pub struct AddFlagRule {
    /// The flag.
    pub name: FlagName,
    /// The rule.
    pub rule: Rule,
    /// Where it goes (0 first; none: last).
    pub at: Option<usize>,
}

impl Endpoint for AddFlagRule {
    const OPERATION: Operation = Operation::AddFlagRule;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        let mut body = serde_json::to_value(&self.rule).expect("a rule serializes");
        if let (Some(at), Value::Object(map)) = (self.at, &mut body) {
            map.insert("position".into(), at.into());
        }
        Encoded::named(&self.name).body(body)
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let (rule, at) = received.json()?.into_typed::<RuleBody>()?.into_rule()?;
        Ok(Self { name, rule, at })
    }
}

/// `DELETE /flags/{name}/rules?index=`: the rule at `index` (0 first) removed.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveFlagRule {
    /// The flag.
    pub name: FlagName,
    /// Which rule.
    pub index: usize,
}

impl Endpoint for RemoveFlagRule {
    const OPERATION: Operation = Operation::RemoveFlagRule;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.name);
        encoded.query.push(("index", self.index.to_string()));
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let index = received
            .number("index", "a rule's index, 0 for the first")?
            .ok_or_else(|| Error::invalid("index", "is required"))?;
        Ok(Self { name, index })
    }
}

/// `PUT /flags/{name}/variants`: the flag's variants replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFlagVariants {
    /// The flag.
    pub name: FlagName,
    /// Its variants (none: no variants).
    pub variants: Vec<Variant>,
}

impl Endpoint for SetFlagVariants {
    const OPERATION: Operation = Operation::SetFlagVariants;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.name).body(json!({ "variants": self.variants }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let variants = received.json()?.typed("variants")?;
        Ok(Self { name, variants })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `PUT /flags/{name}/prerequisites`: the flags it requires replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFlagPrerequisites {
    /// The flag.
    pub name: FlagName,
    /// What it requires (none: nothing).
    pub prerequisites: Vec<Prerequisite>,
}

impl Endpoint for SetFlagPrerequisites {
    const OPERATION: Operation = Operation::SetFlagPrerequisites;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.name).body(json!({ "prerequisites": self.prerequisites }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let prerequisites = received.json()?.typed("prerequisites")?;
        Ok(Self {
            name,
            prerequisites,
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `PUT /segments/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetSegment {
    /// The segment.
    pub name: SegmentName,
    /// What it is for.
    pub description: Option<String>,
    /// Its constraints.
    pub constraints: Vec<octostore_core::Constraint>,
}

impl Endpoint for SetSegment {
    const OPERATION: Operation = Operation::SetSegment;
    type Answer = SegmentInfo;

    fn encode(&self) -> Encoded {
        let mut body = json!({ "constraints": self.constraints });
        if let Some(description) = &self.description {
            body["description"] = description.as_str().into();
        }
        Encoded::named(&self.name).body(body)
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(SegmentName::parse)?;
        let mut body = received.json()?;
        let description = body.optional_str("description")?.map(str::to_owned);
        let constraints = constraints_of(body.typed::<Vec<ConstraintBody>>("constraints")?)?;
        Ok(Self {
            name,
            description,
            constraints,
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `POST /flags/{name}/evaluate`: the flag for a context (`{"context": {...}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateFlagInContext {
    /// The flag.
    pub name: FlagName,
    /// Who and what it is evaluated for.
    pub context: EvaluationContext,
}

impl Endpoint for EvaluateFlagInContext {
    const OPERATION: Operation = Operation::EvaluateFlagInContext;
    type Answer = EvaluationInfo;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.name).body(json!({ "context": context_json(&self.context) }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let context = context_of(&received.json()?.object("context")?)?;
        Ok(Self { name, context })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `POST /ofrep/v1/evaluate/flags/{key}`: OFREP's evaluation of one flag. Its failures are
/// OFREP's shapes (`{key, errorCode, errorDetails}`), not the API's.
#[derive(Debug, Clone, PartialEq)]
pub struct OfrepEvaluateFlag {
    /// The flag.
    pub key: FlagName,
    /// The context.
    pub context: EvaluationContext,
}

impl Endpoint for OfrepEvaluateFlag {
    const OPERATION: Operation = Operation::OfrepEvaluateFlag;
    type Answer = OfrepEvaluation;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.key).body(json!({ "context": context_json(&self.context) }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(FlagName::parse)?;
        let context = context_of(&received.json()?.object("context")?)?;
        Ok(Self { key, context })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `POST /ofrep/v1/evaluate/flags`: OFREP's evaluation of every flag of the caller, with an
/// `ETag` (an `If-None-Match` of the same answers 304).
#[derive(Debug, Clone, PartialEq)]
pub struct OfrepEvaluateFlags {
    /// The context.
    pub context: EvaluationContext,
    /// The `ETag` of the answer the caller holds.
    pub if_none_match: Option<String>,
}

impl Endpoint for OfrepEvaluateFlags {
    const OPERATION: Operation = Operation::OfrepEvaluateFlags;
    type Answer = OfrepBulk;

    fn encode(&self) -> Encoded {
        let mut encoded =
            Encoded::default().body(json!({ "context": context_json(&self.context) }));
        if let Some(etag) = &self.if_none_match {
            encoded.headers.push(("if-none-match", etag.clone()));
        }
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let context = context_of(&received.json()?.object("context")?)?;
        let if_none_match = received
            .headers
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            context,
            if_none_match,
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}
