//! `octostore flag rule|segment|variant|prereq|eval`: a flag's targeting. What is typed is
//! parsed here, before the store is opened, and printed back in the same syntax: each line of
//! `flag rule list` is the options of `flag rule add` that make the rule, and so on.

use std::process::ExitCode;

use octostore_core::{
    Constraint, Error, EvaluationContext, FlagName, Operator, Payload, Percentage, Prerequisite,
    PropertyName, PropertyValue, Result, Rule, SegmentName, Subject, TargetingChange, Variant,
    VariantName,
};
use octostore_http::dto::{
    payload_value, ConstraintBody, Deleted, EvaluationInfo, FlagInfo, SegmentInfo, SegmentList,
};
use serde_json::Value;

use super::{negative, print};
use crate::args::{
    EvalArgs, Global, PrereqCommand, RuleCommand, SegmentCommand, VariantCommand, WhereArgs,
};
use crate::failure::Failure;
use crate::target::Target;

/// `flag rule ...`.
pub fn rule(global: &Global, command: RuleCommand) -> Result<ExitCode, Failure> {
    match command {
        RuleCommand::Add {
            name,
            conditions,
            segments,
            percentage,
            position,
        } => {
            let name = FlagName::parse(&name)?;
            let segments = segments
                .iter()
                .map(|s| SegmentName::parse(s))
                .collect::<Result<_>>()?;
            let percentage = percentage
                .map(|p| Percentage::new(p).map(Percentage::get))
                .transpose()?;
            let rule = Rule::new(constraints(&conditions)?, segments, percentage)?;
            let change = TargetingChange::AddRule { rule, at: position };
            change_targeting(global, &name, change, describe_rules)?;
        }
        RuleCommand::List { name } => {
            let name = FlagName::parse(&name)?;
            let flag = Target::open(global)?.api().flag(&name)?;
            let info = FlagInfo::from(&flag);
            print(global.json, &info, || describe_rules(&info));
        }
        RuleCommand::Remove { name, index } => {
            let name = FlagName::parse(&name)?;
            let change = TargetingChange::RemoveRule(index);
            change_targeting(global, &name, change, describe_rules)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flag segment ...`.
pub fn segment(global: &Global, command: SegmentCommand) -> Result<ExitCode, Failure> {
    match command {
        SegmentCommand::Set {
            segment,
            conditions,
            description,
        } => {
            let name = SegmentName::parse(&segment)?;
            let constraints = constraints(&conditions)?;
            let target = Target::open(global)?;
            let segment = target.api().set_segment(&name, description, constraints)?;
            let info = SegmentInfo::from(&segment);
            print(global.json, &info, || describe_segment(&info));
        }
        SegmentCommand::Get { segment } => {
            let name = SegmentName::parse(&segment)?;
            let segment = Target::open(global)?.api().segment(&name)?;
            let info = SegmentInfo::from(&segment);
            print(global.json, &info, || describe_segment(&info));
        }
        SegmentCommand::Delete { segment } => {
            let name = SegmentName::parse(&segment)?;
            Target::open(global)?.api().delete_segment(&name)?;
            print(global.json, &Deleted { deleted: true }, || {
                format!("deleted {name}")
            });
        }
        SegmentCommand::List => {
            let segments = Target::open(global)?.api().segments()?;
            let list = SegmentList {
                segments: segments.iter().map(SegmentInfo::from).collect(),
            };
            print(global.json, &list, || {
                lines(&list.segments, describe_segment)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flag variant ...`.
pub fn variant(global: &Global, command: VariantCommand) -> Result<ExitCode, Failure> {
    match command {
        VariantCommand::Set {
            name,
            variants,
            none: _,
        } => {
            let name = FlagName::parse(&name)?;
            let variants = variants
                .iter()
                .map(|v| parse_variant(v))
                .collect::<Result<_>>()?;
            let change = TargetingChange::SetVariants(variants);
            change_targeting(global, &name, change, describe_variants)?;
        }
        VariantCommand::List { name } => {
            let name = FlagName::parse(&name)?;
            let flag = Target::open(global)?.api().flag(&name)?;
            let info = FlagInfo::from(&flag);
            print(global.json, &info, || describe_variants(&info));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flag prereq ...`.
pub fn prereq(global: &Global, command: PrereqCommand) -> Result<ExitCode, Failure> {
    match command {
        PrereqCommand::Set {
            name,
            parents,
            none: _,
        } => {
            let name = FlagName::parse(&name)?;
            let prerequisites = parents
                .iter()
                .map(|p| parse_prerequisite(p))
                .collect::<Result<_>>()?;
            let change = TargetingChange::SetPrerequisites(prerequisites);
            change_targeting(global, &name, change, describe_prerequisites)?;
        }
        PrereqCommand::List { name } => {
            let name = FlagName::parse(&name)?;
            let flag = Target::open(global)?.api().flag(&name)?;
            let info = FlagInfo::from(&flag);
            print(global.json, &info, || describe_prerequisites(&info));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flag eval`: exit 0 if on, 1 if off, as `flag get`.
pub fn eval(global: &Global, args: EvalArgs) -> Result<ExitCode, Failure> {
    let name = FlagName::parse(&args.name)?;
    let mut context = EvaluationContext::default();
    if let Some(subject) = &args.subject {
        context.subject = Some(Subject::parse(subject)?);
    }
    for prop in &args.props {
        let (property, value) = parse_prop(prop)?;
        context = context.with(property, value).map_err(|e| {
            reworded(e, "prop", |reason| {
                format!("{prop:?}: {reason}; give the subject as --subject")
            })
        })?;
    }
    let evaluation = Target::open(global)?
        .api()
        .evaluate_flag_in(&name, &context)?;
    let info = EvaluationInfo::new(name.as_str(), &evaluation);
    print(global.json, &info, || {
        let mut lines = vec![if info.enabled { "on" } else { "off" }.to_owned()];
        if let Some(variant) = &info.variant {
            lines.push(format!("variant {variant}"));
        }
        if let Some(value) = &info.value {
            lines.push(format!("value {value}"));
        }
        lines.push(format!("reason {}", info.reason));
        lines.join("\n")
    });
    Ok(if info.enabled {
        ExitCode::SUCCESS
    } else {
        negative()
    })
}

/// Applies `change` to the flag and prints the flag (`--json`) or the part `describe` says.
fn change_targeting(
    global: &Global,
    name: &FlagName,
    change: TargetingChange,
    describe: fn(&FlagInfo) -> String,
) -> Result<(), Failure> {
    let flag = Target::open(global)?
        .api()
        .change_flag_targeting(name, change)?;
    let info = FlagInfo::from(&flag);
    print(global.json, &info, || describe(&info));
    Ok(())
}

fn lines<T>(items: &[T], line: impl Fn(&T) -> String) -> String {
    items.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Each rule a line: its index, then the options of `flag rule add` that make it.
fn describe_rules(flag: &FlagInfo) -> String {
    let numbered: Vec<_> = flag.rules.iter().enumerate().collect();
    lines(&numbered, |(index, rule)| {
        let mut words = vec![index.to_string()];
        words.extend(rule.constraints.iter().map(condition_option));
        words.extend(rule.segments.iter().map(|s| format!("--segment {s}")));
        if let Some(p) = rule.percentage {
            words.push(format!("--percentage {p}"));
        }
        if words.len() == 1 {
            words.push("(every context)".into());
        }
        words.join(" ")
    })
}

/// A segment as the arguments of `flag segment set` that make it.
fn describe_segment(segment: &SegmentInfo) -> String {
    let mut words = vec![segment.name.clone()];
    words.extend(segment.constraints.iter().map(condition_option));
    if let Some(description) = &segment.description {
        words.push(format!("--description {}", shell_quoted(description)));
    }
    words.join(" ")
}

/// Each variant a line, as `flag variant set` takes it.
fn describe_variants(flag: &FlagInfo) -> String {
    lines(&flag.variants, |v| {
        let mut text = format!("{}={}", v.name, v.weight);
        if let Some(payload) = &v.payload {
            let value = match payload {
                Payload::String(s) => s.clone(),
                other => payload_value(other).to_string(),
            };
            text.push_str(&format!(":{}:{value}", payload.type_name()));
        }
        shell_quoted(&text)
    })
}

/// Each flag required a line, as `flag prereq set` takes it.
fn describe_prerequisites(flag: &FlagInfo) -> String {
    lines(&flag.prerequisites, |p| {
        if p.variants.is_empty() {
            p.flag.to_string()
        } else {
            let variants: Vec<_> = p.variants.iter().map(VariantName::as_str).collect();
            shell_quoted(&format!("{}={}", p.flag, variants.join(",")))
        }
    })
}

/// The constraints of `--where` and `--where-json`, in that order.
fn constraints(args: &WhereArgs) -> Result<Vec<Constraint>> {
    let typed = args.conditions.iter().map(|c| parse_where(c));
    let json = args.where_json.iter().map(|c| parse_where_json(c));
    typed.chain(json).collect()
}

/// The example in errors about `--where`'s syntax.
const WHERE_SYNTAX: &str =
    "write 'PROPERTY OPERATOR VALUE[,VALUE...]', as 'plan IN pro,enterprise'";

/// `err`, an invalid value, said as the flag `field`'s, its reason as `say` words it.
fn reworded(err: Error, field: &'static str, say: impl FnOnce(&str) -> String) -> Error {
    match err {
        Error::Invalid { reason, .. } => Error::invalid(field, say(&reason)),
        other => other,
    }
}

/// The first word of `text` and the rest, trimmed.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// A condition as `--where` spells it: `PROPERTY [!][~]OPERATOR VALUE[,VALUE...]`.
pub fn parse_where(text: &str) -> Result<Constraint> {
    let invalid = |reason: String| Error::invalid("where", reason);
    let (property, rest) = first_word(text);
    let (operator, values) = first_word(rest);
    if property.is_empty() {
        return Err(invalid(format!("is empty: {WHERE_SYNTAX}")));
    }
    if operator.is_empty() {
        return Err(invalid(format!("{text:?} has no operator: {WHERE_SYNTAX}")));
    }
    if values.is_empty() {
        return Err(invalid(format!(
            "{text:?} has no value after its operator: {WHERE_SYNTAX}"
        )));
    }
    let (mut inverted, mut case_insensitive, mut bare) = (false, false, operator);
    loop {
        if let Some(rest) = bare.strip_prefix('!').filter(|_| !inverted) {
            (inverted, bare) = (true, rest);
        } else if let Some(rest) = bare.strip_prefix('~').filter(|_| !case_insensitive) {
            (case_insensitive, bare) = (true, rest);
        } else {
            break;
        }
    }
    let operator = Operator::ALL
        .into_iter()
        .find(|o| o.name().eq_ignore_ascii_case(bare))
        .ok_or_else(|| {
            let names: Vec<_> = Operator::ALL.iter().map(|o| o.name()).collect();
            invalid(format!(
                "unknown operator {bare:?} in {text:?}: use one of {} (prefixed with ! to \
                 negate it, ~ to ignore case)",
                names.join(", ")
            ))
        })?;
    let property = PropertyName::parse(property)
        .map_err(|e| reworded(e, "where", |r| format!("{text:?}: the property {r}")))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
    if values.iter().any(String::is_empty) {
        return Err(invalid(format!(
            "{text:?} has an empty value (an empty string needs --where-json)"
        )));
    }
    Constraint::new(property, operator, values, case_insensitive, inverted)
        .map_err(|e| reworded(e, "where", |r| format!("{text:?}: {r}")))
}

/// A condition as `--where-json` gives it: the API's JSON of one.
fn parse_where_json(text: &str) -> Result<Constraint> {
    let body: ConstraintBody = serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            "where_json",
            format!("{text:?} is not a condition's JSON ({e})"),
        )
    })?;
    body.into_constraint().map_err(|e| match e {
        Error::Invalid { field, reason } => {
            Error::invalid("where_json", format!("{text:?}: {field} {reason}"))
        }
        other => other,
    })
}

/// A condition as `--where` spells it, or as `--where-json` when its values need it (a value
/// with a comma, spaces at its ends, or none); quoted for the shell.
fn condition_option(c: &Constraint) -> String {
    let plain = c
        .values()
        .iter()
        .all(|v| !v.is_empty() && !v.contains(',') && v.trim() == &**v);
    if !plain {
        let json = serde_json::to_string(c).expect("a condition serializes");
        return format!("--where-json {}", shell_quoted(&json));
    }
    let values: Vec<&str> = c.values().iter().map(|v| &**v).collect();
    let text = format!(
        "{} {}{}{} {}",
        c.property(),
        if c.inverted() { "!" } else { "" },
        if c.case_insensitive() { "~" } else { "" },
        c.operator().name(),
        values.join(",")
    );
    format!("--where {}", shell_quoted(&text))
}

/// `text` as one word for a POSIX shell: as it is if it holds only characters no shell reads
/// specially, else in single quotes (each ' as '\'').
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A variant as `flag variant set` takes it: `VARIANT=WEIGHT[:TYPE:PAYLOAD]`.
fn parse_variant(text: &str) -> Result<Variant> {
    let invalid = |reason: String| Error::invalid("variant", format!("{text:?}: {reason}"));
    let syntax = "write VARIANT=WEIGHT[:TYPE:PAYLOAD], as blue=50 or blue=50:string:#0000ff";
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| invalid(format!("no =WEIGHT: {syntax}")))?;
    let name = VariantName::parse(name)
        .map_err(|e| reworded(e, "variant", |r| format!("{text:?}: the name {r}")))?;
    let (weight, payload) = match rest.split_once(':') {
        Some((weight, payload)) => (weight, Some(payload)),
        None => (rest, None),
    };
    let weight = weight.parse::<u32>().map_err(|_| {
        invalid(format!(
            "the weight {weight:?} is not a whole number of 0 or more: {syntax}"
        ))
    })?;
    let payload = payload
        .map(|typed| {
            let (kind, value) = typed
                .split_once(':')
                .ok_or_else(|| invalid(format!("no :PAYLOAD after the type: {syntax}")))?;
            let not = |what: &str| invalid(format!("{value:?} is not {what}"));
            Ok(match kind {
                "string" => Payload::String(value.to_owned()),
                "number" => Payload::Number(
                    serde_json::from_str(value.trim()).map_err(|_| not("a number"))?,
                ),
                "boolean" => Payload::Boolean(match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(not("true or false")),
                }),
                "json" => Payload::Json(
                    serde_json::from_str(value)
                        .map_err(|e| invalid(format!("{value:?} is not JSON ({e})")))?,
                ),
                other => {
                    return Err(invalid(format!(
                        "unknown type {other:?}: use string, number, boolean or json"
                    )))
                }
            })
        })
        .transpose()?;
    Ok(Variant {
        name,
        weight,
        payload,
    })
}

/// A flag required, as `flag prereq set` takes it: `PARENT[=VARIANT[,VARIANT...]]`.
fn parse_prerequisite(text: &str) -> Result<Prerequisite> {
    let (flag, variants) = match text.split_once('=') {
        Some((flag, variants)) => (flag, Some(variants)),
        None => (text, None),
    };
    let flag = FlagName::parse(flag)
        .map_err(|e| reworded(e, "prerequisite", |r| format!("{text:?}: the flag {r}")))?;
    let variants = variants
        .map(|list| {
            list.split(',')
                .map(|v| {
                    VariantName::parse(v).map_err(|e| {
                        reworded(e, "prerequisite", |r| format!("{text:?}: a variant {r}"))
                    })
                })
                .collect()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Prerequisite { flag, variants })
}

/// A property of `--prop`: `KEY=VALUE` (text) or `KEY:=JSON` (a string, number or boolean).
fn parse_prop(text: &str) -> Result<(PropertyName, PropertyValue)> {
    let invalid = |reason: String| Error::invalid("prop", format!("{text:?}: {reason}"));
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| invalid("write KEY=VALUE, or KEY:=JSON".into()))?;
    let (key, json) = match key.strip_suffix(':') {
        Some(key) => (key, true),
        None => (key, false),
    };
    let name = PropertyName::parse(key)
        .map_err(|e| reworded(e, "prop", |r| format!("{text:?}: the key {r}")))?;
    if !json {
        return Ok((name, PropertyValue::String(value.to_owned())));
    }
    let value = match serde_json::from_str(value) {
        Ok(Value::String(s)) => PropertyValue::String(s),
        Ok(Value::Bool(b)) => PropertyValue::Boolean(b),
        Ok(Value::Number(n)) => PropertyValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Ok(_) => return Err(invalid("must be a JSON string, number or boolean".into())),
        Err(e) => {
            return Err(invalid(format!(
                "not JSON ({e}); for text, write KEY=VALUE"
            )))
        }
    };
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(err: Error) -> String {
        err.to_string()
    }

    #[test]
    fn a_condition_reads_back_as_typed() {
        for typed in [
            "plan IN pro,enterprise",
            "country NOT_IN us,ca",
            "app.version SEMVER_GT 2.0.0",
            "email ~STR_ENDS_WITH @acme.com",
            "plan !STR_CONTAINS trial",
            "name !~IN bob",
            "seats NUM_GTE 10",
            "currentTime DATE_AFTER 2026-12-24T18:00:00Z",
        ] {
            let c = parse_where(typed).unwrap();
            assert_eq!(condition_option(&c), format!("--where '{typed}'"));
        }
        // Lower case, the modifiers in either order, spaces around values.
        let c = parse_where("  email  ~!str_ends_with  @a.com , @b.com ").unwrap();
        assert_eq!(
            condition_option(&c),
            "--where 'email !~STR_ENDS_WITH @a.com,@b.com'"
        );
    }

    #[test]
    fn values_a_where_cannot_spell_print_as_json() {
        let c = parse_where_json(r#"{"property":"city","operator":"IN","values":["Paris, TX"]}"#)
            .unwrap();
        assert_eq!(
            condition_option(&c),
            r#"--where-json '{"property":"city","operator":"IN","values":["Paris, TX"]}'"#
        );
        let back = r#"{"property":"city","operator":"IN","values":["Paris, TX"]}"#;
        assert_eq!(parse_where_json(back).unwrap(), c);
    }

    #[test]
    fn a_bad_condition_says_what_to_write() {
        let err = said(parse_where("plan").unwrap_err());
        assert!(
            err.starts_with("invalid where: \"plan\" has no operator: write"),
            "{err}"
        );
        let err = said(parse_where("plan IN").unwrap_err());
        assert!(err.contains("has no value after its operator"), "{err}");
        let err = said(parse_where("plan EQUALS pro").unwrap_err());
        assert!(
            err.contains(
                "unknown operator \"EQUALS\" in \"plan EQUALS pro\": use one of IN, NOT_IN,"
            ),
            "{err}"
        );
        let err = said(parse_where("v SEMVER_GT two").unwrap_err());
        assert!(err.contains("\"two\" is not a semantic version"), "{err}");
        let err = said(parse_where("plan IN a,,b").unwrap_err());
        assert!(err.contains("empty value"), "{err}");
    }

    #[test]
    fn variants_keep_their_payloads_types() {
        let v = parse_variant("blue=500:string:#0000ff:x").unwrap();
        assert_eq!(v.payload, Some(Payload::String("#0000ff:x".into())));
        let v = parse_variant("n=1:number:42").unwrap();
        assert_eq!(payload_value(v.payload.as_ref().unwrap()).to_string(), "42");
        let v = parse_variant("n=1:number:4.5").unwrap();
        assert_eq!(
            payload_value(v.payload.as_ref().unwrap()).to_string(),
            "4.5"
        );
        let v = parse_variant("j=1:json:{\"a\":[1]}").unwrap();
        assert_eq!(
            v.payload,
            Some(Payload::Json(serde_json::json!({"a": [1]})))
        );
        assert_eq!(parse_variant("plain=7").unwrap().payload, None);
        for bad in [
            "blue",
            "blue=x",
            "blue=1:string",
            "b=1:number:x",
            "b=1:color:red",
        ] {
            assert!(parse_variant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn props_are_text_unless_typed_as_json() {
        let (name, value) = parse_prop("zip=007").unwrap();
        assert_eq!(name.as_str(), "zip");
        assert_eq!(value, PropertyValue::String("007".into()));
        assert_eq!(
            parse_prop("a=b=c").unwrap().1,
            PropertyValue::String("b=c".into())
        );
        assert_eq!(parse_prop("n:=10").unwrap().1, PropertyValue::Number(10.0));
        assert_eq!(
            parse_prop("b:=true").unwrap().1,
            PropertyValue::Boolean(true)
        );
        assert_eq!(
            parse_prop("s:=\"x\"").unwrap().1,
            PropertyValue::String("x".into())
        );
        for bad in ["novalue", "n:=[1]", "n:=nope", "bad key=1"] {
            assert!(parse_prop(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_quoting_leaves_plain_words_alone() {
        assert_eq!(shell_quoted("blue=500:string:x"), "blue=500:string:x");
        assert_eq!(shell_quoted("it's"), r"'it'\''s'");
        assert_eq!(shell_quoted(""), "''");
    }
}
