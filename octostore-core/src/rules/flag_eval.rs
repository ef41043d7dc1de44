//! A flag's answer for an evaluation context: on or off, the variant, the value and the
//! reason, as OpenFeature names them.
//!
//! In order: a disabled flag is off (`DISABLED`); a flag whose prerequisites are not all on
//! for the context is off (`PREREQUISITE_FAILED`); a subject whose bucket is past the flag's
//! percentage is off (`SPLIT`). Then, with no rules, the flag is on (`STATIC`, or `SPLIT` when
//! a percentage or a split between variants decided); with rules, the first rule whose
//! constraints and segments all hold and whose own percentage admits the subject turns it on
//! (`TARGETING_MATCH`), and if none does it is off (`DEFAULT`). A constraint on a property the
//! context lacks fails, inverted or not. Buckets and variants are Unleash's, by the subject.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::backend::Tx;
use crate::records::flag::Flag;
use crate::records::identity::UserId;
use crate::records::targeting::{
    fold, parse_date, parse_number, Constraint, Operand, Operator, Payload, Rule, Segment,
};
use crate::rules::flag::{self, bucket, hash_of};
use crate::values::error::{Error, Result};
use crate::values::names::{FlagName, PropertyName, SegmentName, Subject, VariantName};

/// How deep prerequisites may chain (a flag requiring one requiring one...).
pub const MAX_PREREQUISITE_DEPTH: usize = 8;

/// The murmur3 seed of Unleash's variant assignment.
const VARIANT_SEED: u32 = 86_028_157;

/// The property that, when the context does not give it, is the store's clock: date
/// constraints on it schedule a flag (any other constraint on it then fails, inverted or not).
pub const CURRENT_TIME: &str = "currentTime";
/// The property that names the subject in a constraint (`subject IN [alice, bob]`).
pub const SUBJECT: &str = "subject";

/// A property's value in an evaluation context.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// Text: a string operator compares it as is, the others parse it.
    String(String),
    /// A number.
    Number(f64),
    /// A boolean, compared as the text `true` or `false`.
    Boolean(bool),
}

/// What a flag is evaluated for: a subject (OpenFeature's targeting key) and properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationContext {
    /// Who: the key of percentage rollouts and variants.
    pub subject: Option<Subject>,
    /// Everything else rules may look at.
    pub properties: BTreeMap<PropertyName, PropertyValue>,
}

impl EvaluationContext {
    /// A context of a subject alone.
    pub fn of(subject: Subject) -> Self {
        Self {
            subject: Some(subject),
            properties: BTreeMap::new(),
        }
    }

    /// Adds a property; `subject` is refused (it is [`EvaluationContext::subject`]).
    pub fn with(mut self, name: PropertyName, value: PropertyValue) -> Result<Self> {
        if name.as_str() == SUBJECT {
            return Err(Error::invalid(
                "context",
                "`subject` is the context's subject (its targeting key), not a property",
            ));
        }
        self.properties.insert(name, value);
        Ok(self)
    }
}

/// Why a flag answered what it did; OpenFeature's reasons, and `PREREQUISITE_FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// On for everyone: no rule, percentage or split decided.
    Static,
    /// The subject's bucket decided: a percentage or a split between variants.
    Split,
    /// A rule matched the context.
    TargetingMatch,
    /// The flag has rules and none turned it on.
    Default,
    /// The flag is off for everyone.
    Disabled,
    /// A flag it requires is off (or on another variant) for the context.
    PrerequisiteFailed,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 6] = [
        Reason::Static,
        Reason::Split,
        Reason::TargetingMatch,
        Reason::Default,
        Reason::Disabled,
        Reason::PrerequisiteFailed,
    ];

    /// The reason named `name` (as [`name`](Self::name) spells it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The reason among OpenFeature's own: `PREREQUISITE_FAILED` is none of them (and its
    /// SDKs refuse reasons they do not know). A prerequisite is its parent's kill switch: the
    /// parent off (or on another variant) disables the child for the context, so the child
    /// says `DISABLED`.
    pub fn in_open_feature(self) -> Self {
        match self {
            Reason::PrerequisiteFailed => Reason::Disabled,
            reason => reason,
        }
    }

    /// Its name, as OpenFeature spells it.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Split => "SPLIT",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::PrerequisiteFailed => "PREREQUISITE_FAILED",
        }
    }
}

/// A flag's answer for a context.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Whether the flag is on.
    pub enabled: bool,
    /// The variant assigned, when the flag is on and has variants.
    pub variant: Option<VariantName>,
    /// The value: the variant's payload when on; a flag whose variants carry none answers
    /// whether it is on; a flag with payloads that is off answers none (the caller's default).
    pub value: Option<Payload>,
    /// Why.
    pub reason: Reason,
}

/// Where an evaluation finds the flags a flag requires and the segments its rules name.
pub trait Definitions {
    /// The owner's flag.
    fn flag(&mut self, name: &FlagName) -> Result<Option<Flag>>;
    /// The owner's segment.
    fn segment(&mut self, name: &SegmentName) -> Result<Option<Segment>>;
}

/// The definitions of one owner, read in a transaction.
pub(crate) struct Stored<'a> {
    pub(crate) tx: &'a mut dyn Tx,
    pub(crate) owner: UserId,
}

impl Definitions for Stored<'_> {
    fn flag(&mut self, name: &FlagName) -> Result<Option<Flag>> {
        self.tx.flag(self.owner, name)
    }
    fn segment(&mut self, name: &SegmentName) -> Result<Option<Segment>> {
        self.tx.segment(self.owner, name)
    }
}

/// Definitions and the instant of an evaluation, read only if a constraint on `currentTime`
/// needs it (most evaluations read no clock).
trait Source: Definitions {
    fn now(&mut self) -> Result<DateTime<Utc>>;
}

impl Source for Stored<'_> {
    fn now(&mut self) -> Result<DateTime<Utc>> {
        Ok(self.tx.now()?.to_datetime())
    }
}

/// Definitions with the instant given.
struct At<'a> {
    definitions: &'a mut dyn Definitions,
    now: DateTime<Utc>,
}

impl Definitions for At<'_> {
    fn flag(&mut self, name: &FlagName) -> Result<Option<Flag>> {
        self.definitions.flag(name)
    }
    fn segment(&mut self, name: &SegmentName) -> Result<Option<Segment>> {
        self.definitions.segment(name)
    }
}

impl Source for At<'_> {
    fn now(&mut self) -> Result<DateTime<Utc>> {
        Ok(self.now)
    }
}

/// Evaluates `flag` for `context` at `now` (the default `currentTime`).
pub fn evaluate(
    flag: &Flag,
    context: &EvaluationContext,
    now: DateTime<Utc>,
    definitions: &mut dyn Definitions,
) -> Result<Evaluation> {
    Evaluator::new(context, &mut At { definitions, now }).evaluate(flag, 0)
}

/// The flag named `name` of `owner`, evaluated in a transaction (whose clock is read only
/// if a constraint on `currentTime` needs it).
pub(crate) fn evaluate_stored(
    tx: &mut dyn Tx,
    owner: UserId,
    name: &FlagName,
    context: &EvaluationContext,
) -> Result<Evaluation> {
    let flag = flag::existing(tx, owner, name)?;
    Evaluator::new(context, &mut Stored { tx, owner }).evaluate(&flag, 0)
}

/// Whether the flag is on for a context of `subject` alone (the seed's evaluation).
pub(crate) fn enabled_for(
    tx: &mut dyn Tx,
    owner: UserId,
    name: &FlagName,
    subject: &Subject,
) -> Result<bool> {
    let flag = flag::existing(tx, owner, name)?;
    // The subject borrowed, beside an empty context: no copy of it is made.
    let context = EvaluationContext::default();
    let mut stored = Stored { tx, owner };
    let mut evaluator = Evaluator::new(&context, &mut stored);
    evaluator.subject = Some(subject);
    evaluator.evaluate(&flag, 0).map(|e| e.enabled)
}

/// Every flag of `owner`, by name, each evaluated for `context` (a flag's own failure, such as
/// a subject it needs, is its entry's).
pub(crate) fn evaluate_all(
    tx: &mut dyn Tx,
    owner: UserId,
    context: &EvaluationContext,
) -> Result<Vec<(FlagName, Result<Evaluation>)>> {
    let mut flags = tx.flags_of(owner)?;
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    let mut stored = Stored { tx, owner };
    let mut evaluator = Evaluator::new(context, &mut stored);
    let mut answers = Vec::with_capacity(flags.len());
    for flag in flags {
        let answer = evaluator.evaluate(&flag, 0);
        if let Err(e @ (Error::Storage { .. } | Error::Unavailable(_))) = answer {
            return Err(e);
        }
        answers.push((flag.name, answer));
    }
    Ok(answers)
}

struct Evaluator<'a, S: Source + ?Sized> {
    context: &'a EvaluationContext,
    /// The context's subject.
    subject: Option<&'a Subject>,
    /// The instant, once read.
    now: Option<DateTime<Utc>>,
    source: &'a mut S,
    /// The answers of the flags required so far, by name and depth (`None`: no such flag): a
    /// flag required along many paths is evaluated once per depth, not once per path (layers
    /// of ten flags each requiring the next ten were 10^8 evaluations). Made at the first.
    required: Option<HashMap<(FlagName, usize), Option<Evaluation>>>,
}

impl<'a, S: Source + ?Sized> Evaluator<'a, S> {
    fn new(context: &'a EvaluationContext, source: &'a mut S) -> Self {
        Self {
            context,
            subject: context.subject.as_ref(),
            now: None,
            source,
            required: None,
        }
    }

    /// The instant of the evaluation, read from the source the first time.
    fn now(&mut self) -> Result<DateTime<Utc>> {
        match self.now {
            Some(now) => Ok(now),
            None => {
                let now = self.source.now()?;
                self.now = Some(now);
                Ok(now)
            }
        }
    }

    fn evaluate(&mut self, flag: &Flag, depth: usize) -> Result<Evaluation> {
        let off = |reason| Evaluation {
            enabled: false,
            variant: None,
            value: match flag.targeting.payload_type() {
                Some(_) => None,
                None => Some(Payload::Boolean(false)),
            },
            reason,
        };
        if !flag.enabled {
            return Ok(off(Reason::Disabled));
        }
        if !self.prerequisites_hold(flag, depth)? {
            return Ok(off(Reason::PrerequisiteFailed));
        }
        let subject = self.subject;
        let bucket = || -> Result<u8> { Ok(bucket(&flag.name, subject_of(subject, flag)?)) };
        let percentage = flag.percentage.map(|p| p.get()).filter(|p| *p < 100);
        if let Some(p) = percentage {
            // A percentage of 0 turns everyone off without needing a subject.
            if p == 0 || bucket()? > p {
                return Ok(off(Reason::Split));
            }
        }
        let targeting = &flag.targeting;
        let reason = if targeting.rules.is_empty() {
            if percentage.is_some() {
                Reason::Split
            } else {
                Reason::Static
            }
        } else {
            let mut matched = false;
            for rule in &targeting.rules {
                if self.rule_matches(rule)? && in_rollout(rule.percentage, &bucket)? {
                    matched = true;
                    break;
                }
            }
            if !matched {
                return Ok(off(Reason::Default));
            }
            Reason::TargetingMatch
        };
        let variants = &targeting.variants;
        if variants.is_empty() {
            return Ok(Evaluation {
                enabled: true,
                variant: None,
                value: Some(Payload::Boolean(true)),
                reason,
            });
        }
        let split = variants.iter().filter(|v| v.weight > 0).count() > 1;
        let chosen = if split {
            let subject = subject_of(subject, flag)?;
            let total: u32 = variants.iter().map(|v| v.weight).sum();
            let target = variant_target(&flag.name, subject, total);
            let mut counter = 0;
            variants
                .iter()
                .filter(|v| v.weight > 0)
                .find(|v| {
                    counter += v.weight;
                    counter >= target
                })
                .expect("the target is at most the total weight")
        } else {
            variants.iter().find(|v| v.weight > 0).expect("a weight")
        };
        Ok(Evaluation {
            enabled: true,
            variant: Some(chosen.name.clone()),
            value: Some(chosen.payload.clone().unwrap_or(Payload::Boolean(true))),
            reason: if split && reason == Reason::Static {
                Reason::Split
            } else {
                reason
            },
        })
    }

    fn prerequisites_hold(&mut self, flag: &Flag, depth: usize) -> Result<bool> {
        for required in &flag.targeting.prerequisites {
            if depth >= MAX_PREREQUISITE_DEPTH {
                return Ok(false);
            }
            let key = (required.flag.clone(), depth + 1);
            let known = self.required.as_ref().and_then(|r| r.get(&key));
            let answer = match known {
                Some(answer) => answer.clone(),
                None => {
                    let answer = match self.source.flag(&required.flag)? {
                        Some(parent) => Some(self.evaluate(&parent, depth + 1)?),
                        None => None,
                    };
                    let required = self.required.get_or_insert_with(HashMap::new);
                    required.insert(key, answer.clone());
                    answer
                }
            };
            let Some(answer) = answer else {
                return Ok(false);
            };
            let on_variant = required.variants.is_empty()
                || answer
                    .variant
                    .as_ref()
                    .is_some_and(|v| required.variants.contains(v));
            if !answer.enabled || !on_variant {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn rule_matches(&mut self, rule: &Rule) -> Result<bool> {
        if !self.all_hold(&rule.constraints)? {
            return Ok(false);
        }
        for name in &rule.segments {
            let Some(segment) = self.source.segment(name)? else {
                return Ok(false);
            };
            if !self.all_hold(&segment.constraints)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn all_hold(&mut self, constraints: &[Constraint]) -> Result<bool> {
        for constraint in constraints {
            if !self.holds(constraint)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the context meets the constraint; a missing property fails it, inverted or not.
    fn holds(&mut self, constraint: &Constraint) -> Result<bool> {
        let property = constraint.property().as_str();
        let context = self.context;
        let value = if property == SUBJECT {
            match self.subject {
                Some(s) => Value::Text(s.as_str()),
                None => return Ok(false),
            }
        } else {
            match context.properties.get(property) {
                Some(PropertyValue::String(s)) => Value::Text(s),
                Some(PropertyValue::Number(n)) => Value::Number(*n),
                Some(PropertyValue::Boolean(b)) => Value::Text(if *b { "true" } else { "false" }),
                None if property == CURRENT_TIME => Value::Instant(self.now()?),
                None => return Ok(false),
            }
        };
        Ok(match compare(constraint, &value) {
            Some(result) => result != constraint.inverted(),
            // A value of the wrong kind (text that is no number, for a number operator) fails
            // the constraint as a missing one does.
            None => false,
        })
    }
}

/// The context's subject, which `flag` needs.
fn subject_of<'c>(subject: Option<&'c Subject>, flag: &Flag) -> Result<&'c Subject> {
    subject.ok_or_else(|| Error::SubjectRequired {
        flag: flag.name.clone(),
    })
}

/// Whether a rule's percentage admits the subject.
fn in_rollout(percentage: Option<u8>, bucket: &dyn Fn() -> Result<u8>) -> Result<bool> {
    Ok(match percentage {
        None | Some(100) => true,
        Some(0) => false,
        Some(p) => bucket()? <= p,
    })
}

/// The point in `1..=total` that picks a subject's variant, as Unleash computes it.
pub fn variant_target(flag: &FlagName, subject: &Subject, total: u32) -> u32 {
    hash_of(flag, subject, VARIANT_SEED) % total + 1
}

/// A context value as a constraint sees it.
enum Value<'a> {
    Text(&'a str),
    Number(f64),
    Instant(DateTime<Utc>),
}

/// The comparison before inversion; `None` when the value is not of the operand's kind.
fn compare(constraint: &Constraint, value: &Value<'_>) -> Option<bool> {
    let number_text;
    let text = match value {
        Value::Text(t) => *t,
        Value::Number(n) => {
            number_text = format_number(*n);
            &number_text
        }
        Value::Instant(_) => "",
    };
    match constraint.operand() {
        Operand::Strings(values) => {
            // The store's clock stands in for `currentTime` in date constraints only: to a
            // string operator it is no text (not the empty one).
            if let Value::Instant(_) = value {
                return None;
            }
            let text = fold(text, constraint.case_insensitive());
            let text = &*text;
            let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
            Some(match constraint.operator() {
                Operator::In => any(&|v| v == text),
                Operator::NotIn => !any(&|v| v == text),
                Operator::StrContains => any(&|v| text.contains(v)),
                Operator::StrStartsWith => any(&|v| text.starts_with(v)),
                _ => any(&|v| text.ends_with(v)),
            })
        }
        Operand::Number(operand) => {
            let n = match value {
                Value::Number(n) => *n,
                _ => parse_number(text)?,
            };
            Some(match constraint.operator() {
                Operator::NumEq => n == *operand,
                Operator::NumGt => n > *operand,
                Operator::NumGte => n >= *operand,
                Operator::NumLt => n < *operand,
                _ => n <= *operand,
            })
        }
        Operand::Date(operand) => {
            let at = match value {
                Value::Instant(at) => *at,
                _ => parse_date(text)?,
            };
            Some(match constraint.operator() {
                Operator::DateBefore => at < *operand,
                _ => at > *operand,
            })
        }
        Operand::Semver(operand) => {
            let version = semver::Version::parse(text).ok()?;
            Some(match constraint.operator() {
                Operator::SemverEq => version == *operand,
                Operator::SemverGt => version > *operand,
                _ => version < *operand,
            })
        }
    }
}

/// A number as text: integers without a fraction (`3`, not `3.0`), as contexts send them.
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}
