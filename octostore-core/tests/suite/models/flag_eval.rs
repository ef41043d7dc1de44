//! Flag evaluation against a model: random flags (enabled, a percentage, rules of constraints
//! on a few properties with every operator, segments, weighted variants with payloads,
//! prerequisites among themselves), random segments and random contexts, evaluated through
//! the Api on every backend and by a plain re-implementation of the semantics documented in
//! `rules/flag_eval.rs`, written here without the crate's evaluator: the buckets are
//! `flag_bucket`'s, the variants come from the `murmur3` crate. Writes of prerequisites that
//! would make a cycle are refused, as the model says.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use octostore_core::{
    flag_bucket, Api, Constraint, Error, Evaluation, EvaluationContext, FlagName, Operator,
    Payload, Percentage, Prerequisite, PropertyName, PropertyValue, Reason, Rule, SegmentName,
    Session, Settings, Subject, TargetingChange, Variant, VariantName,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{config, regressions, unexpected, within};
use crate::support::{backends, Open};

const FLAGS: [&str; 4] = ["flag-0", "flag-1", "flag-2", "flag-3"];
const SEGMENTS: [&str; 3] = ["seg-0", "seg-1", "seg-2"];
const VARIANTS: [&str; 4] = ["v0", "v1", "v2", "v3"];
/// Properties constraints look at: two of them special (`subject`, `currentTime`).
const PROPERTIES: [&str; 6] = ["plan", "n", "version", "when", "subject", "currentTime"];
/// Properties a context may give (`subject` is the context's subject).
const CONTEXT_PROPERTIES: [&str; 5] = ["plan", "n", "version", "when", "currentTime"];
const SUBJECTS: [&str; 5] = ["alice", "Alice", "bob", "user-1", "user-42"];

const STRING_VALUES: [&str; 11] = [
    "pro",
    "PRO",
    "free",
    "3",
    "2.5",
    "1.2.3",
    "2024-01-01",
    "alice",
    "al",
    "CE",
    "",
];
const NUMBER_VALUES: [&str; 5] = ["0", "2.5", "3", "-1", "10"];
const DATE_VALUES: [&str; 4] = [
    "2024-01-01",
    "2024-01-01T12:00:00Z",
    "2024-01-02T00:00:00+02:00",
    "2023-06-01",
];
const SEMVER_VALUES: [&str; 4] = ["1.2.3", "1.10.0", "2.0.0-rc.1", "0.9.9"];
const CONTEXT_TEXTS: [&str; 14] = [
    "pro",
    "Pro",
    "free",
    "3",
    "3.0",
    "2.5",
    "1.2.3",
    "1.10.0",
    "2.0.0-rc.1",
    "2024-01-01",
    "2024-01-01T06:00:00Z",
    "2023-12-31",
    "alice",
    "",
];
const CONTEXT_NUMBERS: [f64; 6] = [0.0, 2.5, 3.0, -1.0, 10.0, 0.1];

/// The murmur3 seed of Unleash's variants.
const VARIANT_SEED: u32 = 86_028_157;

#[derive(Debug, Clone)]
struct ModelConstraint {
    property: &'static str,
    operator: Operator,
    values: Vec<&'static str>,
    case_insensitive: bool,
    inverted: bool,
}

#[derive(Debug, Clone)]
struct ModelRule {
    constraints: Vec<ModelConstraint>,
    /// Indices into the case's segments.
    segments: Vec<usize>,
    percentage: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PayloadKind {
    None,
    String,
    Integer,
    Float,
    Boolean,
}

#[derive(Debug, Clone)]
struct ModelFlag {
    enabled: bool,
    percentage: Option<u8>,
    rules: Vec<ModelRule>,
    /// (weight, payload) of VARIANTS[i].
    variants: Vec<u32>,
    payloads: PayloadKind,
    /// (flag index, variant indices), only of flags of a higher index (no cycle).
    prerequisites: Vec<(usize, Vec<usize>)>,
}

#[derive(Debug, Clone)]
enum ModelValue {
    Text(&'static str),
    Number(f64),
    Boolean(bool),
}

#[derive(Debug, Clone)]
struct ModelContext {
    subject: Option<&'static str>,
    properties: BTreeMap<&'static str, ModelValue>,
}

#[derive(Debug, Clone)]
struct Case {
    /// Seconds past the harness's 2024-01-01T00:00:00Z.
    clock_secs: i64,
    segments: Vec<Vec<ModelConstraint>>,
    flags: Vec<ModelFlag>,
    contexts: Vec<ModelContext>,
    /// Prerequisite writes tried after the set-up: (flag, flag it would also require).
    extra_requirements: Vec<(usize, usize)>,
}

fn select<T: Clone + std::fmt::Debug + 'static>(items: &[T]) -> impl Strategy<Value = T> {
    prop::sample::select(items.to_vec())
}

fn constraint() -> impl Strategy<Value = ModelConstraint> {
    (
        select(&PROPERTIES),
        select(&Operator::ALL),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(property, operator, case_insensitive, inverted)| {
            let values: BoxedStrategy<Vec<&'static str>> = match operator {
                o if o.takes_list() => prop::collection::vec(select(&STRING_VALUES), 1..=3).boxed(),
                Operator::DateBefore | Operator::DateAfter => {
                    select(&DATE_VALUES).prop_map(|v| vec![v]).boxed()
                }
                Operator::SemverEq | Operator::SemverGt | Operator::SemverLt => {
                    select(&SEMVER_VALUES).prop_map(|v| vec![v]).boxed()
                }
                _ => select(&NUMBER_VALUES).prop_map(|v| vec![v]).boxed(),
            };
            values.prop_map(move |values| ModelConstraint {
                property,
                operator,
                values,
                // Ignoring case is for the string operators alone (refused on the others).
                case_insensitive: case_insensitive && operator.takes_list(),
                inverted,
            })
        })
}

fn percentage() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        2 => Just(None),
        2 => (0..=100u8).prop_map(Some),
        1 => select(&[0u8, 100]).prop_map(Some),
    ]
}

fn rule(segments: usize) -> impl Strategy<Value = ModelRule> {
    let named = if segments == 0 {
        Just(vec![]).boxed()
    } else {
        prop::sample::subsequence((0..segments).collect::<Vec<_>>(), 0..=segments.min(2)).boxed()
    };
    (
        // Mostly few constraints, so that rules match often enough to matter.
        prop_oneof![
            3 => prop::collection::vec(constraint(), 0..=2),
            1 => prop::collection::vec(constraint(), 3..=5),
        ],
        named,
        percentage(),
    )
        .prop_map(|(constraints, segments, percentage)| ModelRule {
            constraints,
            segments,
            percentage,
        })
}

fn flag(index: usize, flags: usize, segments: usize) -> impl Strategy<Value = ModelFlag> {
    let later: Vec<usize> = (index + 1..flags).collect();
    let required = prop_oneof![
        2 => Just(vec![]),
        1 => prop::sample::subsequence(later.clone(), 0..=later.len()),
    ];
    let prerequisites = required.prop_flat_map(|required| {
        required
            .into_iter()
            .map(|p| {
                prop_oneof![
                    3 => Just(vec![]),
                    1 => prop::sample::subsequence(vec![0usize, 1, 2, 3], 1..=2),
                ]
                .prop_map(move |vs| (p, vs))
            })
            .collect::<Vec<_>>()
    });
    (
        prop::bool::weighted(0.85),
        percentage(),
        prop::collection::vec(rule(segments), 0..=3),
        prop::collection::vec(0..=5u32, 0..=4),
        select(&[
            PayloadKind::None,
            PayloadKind::None,
            PayloadKind::String,
            PayloadKind::Integer,
            PayloadKind::Float,
            PayloadKind::Boolean,
        ]),
        prerequisites,
    )
        .prop_map(
            |(enabled, percentage, rules, mut variants, payloads, prerequisites)| {
                if !variants.is_empty() && variants.iter().all(|w| *w == 0) {
                    variants[0] = 1;
                }
                ModelFlag {
                    enabled,
                    percentage,
                    rules,
                    variants,
                    payloads,
                    prerequisites,
                }
            },
        )
}

fn context() -> impl Strategy<Value = ModelContext> {
    let value = prop_oneof![
        3 => select(&CONTEXT_TEXTS).prop_map(ModelValue::Text),
        2 => select(&CONTEXT_NUMBERS).prop_map(ModelValue::Number),
        1 => any::<bool>().prop_map(ModelValue::Boolean),
    ];
    (
        prop::option::weighted(0.8, select(&SUBJECTS)),
        prop::collection::btree_map(select(&CONTEXT_PROPERTIES), value, 1..=5),
    )
        .prop_map(|(subject, properties)| ModelContext {
            subject,
            properties,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (1..=FLAGS.len(), 0..=SEGMENTS.len())
        .prop_flat_map(|(flags, segments)| {
            (
                0..48 * 3600i64,
                prop::collection::vec(prop::collection::vec(constraint(), 0..=3), segments),
                (0..flags)
                    .map(|i| flag(i, flags, segments))
                    .collect::<Vec<_>>(),
                prop::collection::vec(context(), 1..=4),
                prop::collection::vec((0..flags, 0..flags), 0..=2),
            )
        })
        .prop_map(
            |(clock_secs, segments, flags, contexts, extra_requirements)| Case {
                clock_secs,
                segments,
                flags,
                contexts,
                extra_requirements,
            },
        )
}

// --- The reference model -------------------------------------------------------------------

/// What the model answers: on, the variant's index, and the reason.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    enabled: bool,
    variant: Option<usize>,
    reason: Reason,
}

/// A flag that needed a subject the context lacks.
struct NeedsSubject(usize);

/// A context value as text (a number without a fraction as an integer), or none for the
/// store's clock.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(t) => Some(t.clone()),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", *n as i64)),
        Value::Number(n) => Some(n.to_string()),
        Value::Clock(_) => None,
    }
}

enum Value {
    Text(String),
    Number(f64),
    Clock(DateTime<Utc>),
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// Whether the context meets the constraint: compared, then negated if inverted; a missing
/// property, or a value of the wrong kind (the clock for a string operator included), fails.
fn holds(c: &ModelConstraint, context: &ModelContext, now: DateTime<Utc>) -> bool {
    let value = if c.property == "subject" {
        match context.subject {
            Some(s) => Value::Text(s.to_owned()),
            None => return false,
        }
    } else {
        match context.properties.get(c.property) {
            Some(ModelValue::Text(t)) => Value::Text(t.to_string()),
            Some(ModelValue::Number(n)) => Value::Number(*n),
            Some(ModelValue::Boolean(b)) => Value::Text(b.to_string()),
            None if c.property == "currentTime" => Value::Clock(now),
            None => return false,
        }
    };
    let compared = match c.operator {
        Operator::In
        | Operator::NotIn
        | Operator::StrContains
        | Operator::StrStartsWith
        | Operator::StrEndsWith => as_text(&value).map(|text| {
            let fold = |s: &str| {
                if c.case_insensitive {
                    s.to_lowercase()
                } else {
                    s.to_owned()
                }
            };
            let text = fold(&text);
            let values: Vec<String> = c.values.iter().map(|v| fold(v)).collect();
            match c.operator {
                Operator::In => values.contains(&text),
                Operator::NotIn => !values.contains(&text),
                Operator::StrContains => values.iter().any(|v| text.contains(v.as_str())),
                Operator::StrStartsWith => values.iter().any(|v| text.starts_with(v.as_str())),
                _ => values.iter().any(|v| text.ends_with(v.as_str())),
            }
        }),
        Operator::NumEq
        | Operator::NumGt
        | Operator::NumGte
        | Operator::NumLt
        | Operator::NumLte => {
            let operand: f64 = c.values[0].parse().unwrap();
            let n = match &value {
                Value::Number(n) => Some(*n),
                other => as_text(other).and_then(|t| parse_number(&t)),
            };
            n.map(|n| match c.operator {
                Operator::NumEq => n == operand,
                Operator::NumGt => n > operand,
                Operator::NumGte => n >= operand,
                Operator::NumLt => n < operand,
                _ => n <= operand,
            })
        }
        Operator::DateBefore | Operator::DateAfter => {
            let operand = parse_date(c.values[0]).unwrap();
            let at = match &value {
                Value::Clock(now) => Some(*now),
                other => as_text(other).and_then(|t| parse_date(&t)),
            };
            at.map(|at| match c.operator {
                Operator::DateBefore => at < operand,
                _ => at > operand,
            })
        }
        Operator::SemverEq | Operator::SemverGt | Operator::SemverLt => {
            let operand = semver::Version::parse(c.values[0]).unwrap();
            let version = as_text(&value).and_then(|t| semver::Version::parse(&t).ok());
            version.map(|v| match c.operator {
                Operator::SemverEq => v == operand,
                Operator::SemverGt => v > operand,
                _ => v < operand,
            })
        }
    };
    match compared {
        Some(result) => result != c.inverted,
        None => false,
    }
}

fn model_bucket(flag: usize, subject: Option<&str>) -> Result<u8, NeedsSubject> {
    let subject = subject.ok_or(NeedsSubject(flag))?;
    Ok(flag_bucket(
        &FlagName::parse(FLAGS[flag]).unwrap(),
        &Subject::parse(subject).unwrap(),
    ))
}

/// Unleash's variant: `murmur3("<flag>:<subject>", 86028157) % total + 1`, the first variant
/// of non-zero weight whose cumulative weight reaches it.
fn model_variant(flag: usize, subject: &str, weights: &[u32]) -> usize {
    let key = format!("{}:{subject}", FLAGS[flag]);
    let hash = murmur3::murmur3_32(&mut key.as_bytes(), VARIANT_SEED).unwrap();
    let total: u32 = weights.iter().sum();
    let target = hash % total + 1;
    let mut sum = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w == 0 {
            continue;
        }
        sum += w;
        if sum >= target {
            return i;
        }
    }
    unreachable!("the target is at most the total")
}

struct Model<'c> {
    case: &'c Case,
    now: DateTime<Utc>,
}

impl Model<'_> {
    fn evaluate(
        &self,
        i: usize,
        context: &ModelContext,
        depth: usize,
    ) -> Result<Answer, NeedsSubject> {
        let flag = &self.case.flags[i];
        let off = |reason| Answer {
            enabled: false,
            variant: None,
            reason,
        };
        if !flag.enabled {
            return Ok(off(Reason::Disabled));
        }
        for (parent, variants) in &flag.prerequisites {
            if depth >= 8 {
                return Ok(off(Reason::PrerequisiteFailed));
            }
            let answer = self.evaluate(*parent, context, depth + 1)?;
            let on_variant =
                variants.is_empty() || answer.variant.is_some_and(|v| variants.contains(&v));
            if !answer.enabled || !on_variant {
                return Ok(off(Reason::PrerequisiteFailed));
            }
        }
        let percentage = flag.percentage.filter(|p| *p < 100);
        if let Some(p) = percentage {
            if p == 0 || model_bucket(i, context.subject)? > p {
                return Ok(off(Reason::Split));
            }
        }
        let mut reason = match percentage {
            Some(_) => Reason::Split,
            None => Reason::Static,
        };
        if !flag.rules.is_empty() {
            let mut matched = false;
            for rule in &flag.rules {
                let constraints = rule
                    .constraints
                    .iter()
                    .chain(rule.segments.iter().flat_map(|s| &self.case.segments[*s]));
                if !constraints.into_iter().all(|c| holds(c, context, self.now)) {
                    continue;
                }
                let admitted = match rule.percentage {
                    None | Some(100) => true,
                    Some(0) => false,
                    Some(p) => model_bucket(i, context.subject)? <= p,
                };
                if admitted {
                    matched = true;
                    break;
                }
            }
            if !matched {
                return Ok(off(Reason::Default));
            }
            reason = Reason::TargetingMatch;
        }
        if flag.variants.is_empty() {
            return Ok(Answer {
                enabled: true,
                variant: None,
                reason,
            });
        }
        let weighted = flag.variants.iter().filter(|w| **w > 0).count();
        let variant = if weighted > 1 {
            let subject = context.subject.ok_or(NeedsSubject(i))?;
            if reason == Reason::Static {
                reason = Reason::Split;
            }
            model_variant(i, subject, &flag.variants)
        } else {
            flag.variants.iter().position(|w| *w > 0).unwrap()
        };
        Ok(Answer {
            enabled: true,
            variant: Some(variant),
            reason,
        })
    }

    /// Whether flag `from` reaches flag `to` through prerequisites.
    fn reaches(&self, from: usize, to: usize) -> bool {
        from == to
            || self.case.flags[from]
                .prerequisites
                .iter()
                .any(|(p, _)| self.reaches(*p, to))
    }
}

fn payload(kind: PayloadKind, variant: usize) -> Option<Payload> {
    let n = variant as u64;
    match kind {
        PayloadKind::None => None,
        PayloadKind::String => Some(Payload::String(format!("text-{n}"))),
        PayloadKind::Integer => Some(Payload::Number(n.into())),
        PayloadKind::Float => Some(Payload::Number(
            serde_json::Number::from_f64(n as f64 + 0.25).unwrap(),
        )),
        PayloadKind::Boolean => Some(Payload::Boolean(variant.is_multiple_of(2))),
    }
}

/// The Evaluation the model's answer stands for.
fn expected(flag: &ModelFlag, answer: &Answer) -> Evaluation {
    let value = match answer.variant {
        Some(v) => Some(payload(flag.payloads, v).unwrap_or(Payload::Boolean(true))),
        None if flag.payloads != PayloadKind::None && !flag.variants.is_empty() => {
            if answer.enabled {
                unreachable!("a flag with variants that is on has one")
            }
            None
        }
        None => Some(Payload::Boolean(answer.enabled)),
    };
    Evaluation {
        enabled: answer.enabled,
        variant: answer
            .variant
            .map(|v| VariantName::parse(VARIANTS[v]).unwrap()),
        value,
        reason: answer.reason,
    }
}

// --- Playing a case on a store ---------------------------------------------------------------

fn constraint_of(c: &ModelConstraint) -> Constraint {
    Constraint::new(
        PropertyName::parse(c.property).unwrap(),
        c.operator,
        c.values.iter().map(|v| v.to_string()).collect(),
        c.case_insensitive,
        c.inverted,
    )
    .unwrap()
}

fn context_of(c: &ModelContext) -> EvaluationContext {
    let mut context = EvaluationContext {
        subject: c.subject.map(|s| Subject::parse(s).unwrap()),
        ..Default::default()
    };
    for (name, value) in &c.properties {
        let value = match value {
            ModelValue::Text(t) => PropertyValue::String(t.to_string()),
            ModelValue::Number(n) => PropertyValue::Number(*n),
            ModelValue::Boolean(b) => PropertyValue::Boolean(*b),
        };
        context = context
            .with(PropertyName::parse(name).unwrap(), value)
            .unwrap();
    }
    context
}

fn flag_name(i: usize) -> FlagName {
    FlagName::parse(FLAGS[i]).unwrap()
}

fn prerequisites_of(list: &[(usize, Vec<usize>)]) -> Vec<Prerequisite> {
    list.iter()
        .map(|(p, vs)| Prerequisite {
            flag: flag_name(*p),
            variants: vs
                .iter()
                .map(|v| VariantName::parse(VARIANTS[*v]).unwrap())
                .collect(),
        })
        .collect()
}

/// Writes the case's segments and flags; variants before prerequisites (which may name them).
fn set_up(me: &Session, case: &mut Case) -> Result<(), TestCaseError> {
    for (i, constraints) in case.segments.iter().enumerate() {
        let name = SegmentName::parse(SEGMENTS[i]).unwrap();
        me.set_segment(&name, None, constraints.iter().map(constraint_of).collect())
            .map_err(unexpected)?;
    }
    for (i, f) in case.flags.iter().enumerate() {
        let name = flag_name(i);
        me.set_flag(
            &name,
            f.enabled,
            f.percentage.map(|p| Percentage::new(p.into()).unwrap()),
        )
        .map_err(unexpected)?;
        for r in &f.rules {
            let segments = r
                .segments
                .iter()
                .map(|s| SegmentName::parse(SEGMENTS[*s]).unwrap())
                .collect();
            let rule = Rule::new(
                r.constraints.iter().map(constraint_of).collect(),
                segments,
                r.percentage,
            )
            .unwrap();
            me.change_flag_targeting(&name, TargetingChange::AddRule { rule, at: None })
                .map_err(unexpected)?;
        }
        let variants = f
            .variants
            .iter()
            .enumerate()
            .map(|(v, weight)| Variant {
                name: VariantName::parse(VARIANTS[v]).unwrap(),
                weight: *weight,
                payload: payload(f.payloads, v),
            })
            .collect();
        me.change_flag_targeting(&name, TargetingChange::SetVariants(variants))
            .map_err(unexpected)?;
    }
    // A variant-specific prerequisite on a flag without that variant is refused: keep only
    // the variants the parent has.
    let counts: Vec<usize> = case.flags.iter().map(|f| f.variants.len()).collect();
    for f in case.flags.iter_mut() {
        for (p, vs) in f.prerequisites.iter_mut() {
            vs.retain(|v| *v < counts[*p]);
        }
    }
    for (i, f) in case.flags.iter().enumerate() {
        let got = me.change_flag_targeting(
            &flag_name(i),
            TargetingChange::SetPrerequisites(prerequisites_of(&f.prerequisites)),
        );
        got.map_err(unexpected)?;
    }
    Ok(())
}

/// Tries each extra requirement: refused as a cycle when the flag required reaches back to
/// the flag, written (and so in the model) otherwise.
fn extra_requirements(me: &Session, case: &mut Case) -> Result<(), TestCaseError> {
    for (from, to) in case.extra_requirements.clone() {
        if case.flags[from].prerequisites.iter().any(|(p, _)| *p == to) {
            continue;
        }
        let mut list = case.flags[from].prerequisites.clone();
        list.push((to, vec![]));
        let got = me.change_flag_targeting(
            &flag_name(from),
            TargetingChange::SetPrerequisites(prerequisites_of(&list)),
        );
        let cycle = (Model {
            case,
            now: DateTime::<Utc>::MIN_UTC,
        })
        .reaches(to, from);
        let step = format!("{} requiring {}", FLAGS[from], FLAGS[to]);
        if cycle {
            prop_assert!(
                matches!(
                    &got,
                    Err(Error::Invalid {
                        field: "prerequisites",
                        ..
                    })
                ),
                "{}: expected a refused cycle, got {:?}",
                step,
                got
            );
            let stored = me.flag(&flag_name(from)).map_err(unexpected)?;
            prop_assert_eq!(
                &stored.targeting.prerequisites,
                &prerequisites_of(&case.flags[from].prerequisites),
                "{}: unchanged",
                step
            );
        } else {
            prop_assert!(got.is_ok(), "{}: {:?}", step, got);
            case.flags[from].prerequisites = list;
        }
    }
    Ok(())
}

fn run(open: Open, case: &Case) -> Result<(), TestCaseError> {
    let h = open(Settings::default());
    h.advance_secs(case.clock_secs);
    let me = h.user("alice");
    let mut case = case.clone();
    set_up(&me, &mut case)?;
    extra_requirements(&me, &mut case)?;
    let model = Model {
        case: &case,
        now: h.store.now(),
    };
    prop_assert_eq!(
        model.now,
        DateTime::from_timestamp(1_704_067_200, 0).unwrap() + Duration::seconds(case.clock_secs)
    );
    for (c, context) in case.contexts.iter().enumerate() {
        let ctx = context_of(context);
        let all = me.evaluate_flags_in(&ctx).map_err(unexpected)?;
        prop_assert_eq!(all.len(), case.flags.len());
        for (i, flag) in case.flags.iter().enumerate() {
            let at = format!("context {c} ({context:?}), {}", FLAGS[i]);
            let got = me.evaluate_flag_in(&flag_name(i), &ctx);
            prop_assert_eq!(&all[i].0, &flag_name(i));
            match model.evaluate(i, context, 0) {
                Ok(answer) => {
                    let want = expected(flag, &answer);
                    let got = got.map_err(unexpected).map_err(within(&at))?;
                    prop_assert_eq!(&got, &want, "{}", at);
                    prop_assert_eq!(all[i].1.as_ref().ok(), Some(&want), "{} (all)", at);
                }
                Err(NeedsSubject(needed)) => {
                    let is_needed = |r: Result<&Evaluation, &Error>| matches!(r, Err(Error::SubjectRequired { flag }) if *flag == flag_name(needed));
                    prop_assert!(is_needed(got.as_ref()), "{}: {:?}", at, got);
                    prop_assert!(is_needed(all[i].1.as_ref()), "{} (all)", at);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(48, regressions!("flag-eval")))]

    /// Random flags with rules, segments, variants and prerequisites answer every random
    /// context as the model does, one flag at a time and all at once, on every backend; and
    /// a prerequisite that would close a cycle is refused, leaving the flag as it was.
    #[test]
    fn flag_evaluation_follows_the_model(case in case()) {
        for (backend, open) in backends() {
            run(open, &case).map_err(within(backend))?;
        }
    }
}
