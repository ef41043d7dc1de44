//! Changing a flag's targeting (a rule added or removed, its variants or prerequisites set)
//! and its owner's segments. Every change is checked whole before it is written: the segments
//! a rule names exist, the flags a flag requires exist and never lead back to it (nor chain
//! deeper than [`MAX_PREREQUISITE_DEPTH`]), and a segment a rule names is never deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backend::Tx;
use crate::records::flag::Flag;
use crate::records::identity::UserId;
use crate::records::targeting::{
    check_constraints, Constraint, Prerequisite, Rule, Segment, Targeting, Variant,
};
use crate::rules::event;
use crate::rules::flag::{self, set_change};
use crate::rules::flag_eval::MAX_PREREQUISITE_DEPTH;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::{FlagName, SegmentName};

/// Longest description of a segment, in characters.
pub const MAX_SEGMENT_DESCRIPTION_CHARS: usize = 1000;

/// One change to a flag's targeting.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetingChange {
    /// Inserts a rule at `at` (0 first; `None` or past the end: last).
    AddRule {
        /// The rule.
        rule: Rule,
        /// Where.
        at: Option<usize>,
    },
    /// Removes the rule at this index (0 first).
    RemoveRule(usize),
    /// Replaces the variants (empty: none).
    SetVariants(Vec<Variant>),
    /// Replaces the prerequisites (empty: none).
    SetPrerequisites(Vec<Prerequisite>),
}

/// Applies `change` to the owner's flag `name`, appending a flag-set event.
pub(crate) fn change(
    tx: &mut dyn Tx,
    now: Timestamp,
    owner: UserId,
    name: &FlagName,
    change: TargetingChange,
) -> Result<Flag> {
    let existing = flag::existing(tx, owner, name)?;
    let mut targeting = Targeting::clone(&existing.targeting);
    match change {
        TargetingChange::AddRule { rule, at } => {
            for segment in &rule.segments {
                if tx.segment(owner, segment)?.is_none() {
                    return Err(Error::not_found(Resource::Segment, segment));
                }
            }
            let at = at.unwrap_or(usize::MAX).min(targeting.rules.len());
            targeting.rules.insert(at, rule);
        }
        TargetingChange::RemoveRule(index) => {
            if index >= targeting.rules.len() {
                return Err(Error::not_found(
                    Resource::FlagRule,
                    format!("{name}[{index}]"),
                ));
            }
            targeting.rules.remove(index);
        }
        TargetingChange::SetVariants(variants) => targeting.variants = variants,
        TargetingChange::SetPrerequisites(prerequisites) => {
            check_prerequisites(tx, owner, name, &prerequisites)?;
            targeting.prerequisites = prerequisites;
        }
    }
    targeting.check()?;
    let flag = Flag {
        targeting: Arc::new(targeting),
        updated_at: now.to_datetime(),
        ..existing
    };
    tx.put_flag(owner, &flag)?;
    event::append(tx, owner, now, set_change(&flag))?;
    Ok(flag)
}

/// Every flag required exists (on the variants named, if any), none leads back to `name`,
/// and no chain of flags through `name`, above and below it, is longer than
/// [`MAX_PREREQUISITE_DEPTH`]. The owner's flags are read once and walked as a graph, each
/// flag visited once, however many paths lead to it.
fn check_prerequisites(
    tx: &mut dyn Tx,
    owner: UserId,
    name: &FlagName,
    prerequisites: &[Prerequisite],
) -> Result<()> {
    let invalid = |reason: String| Error::invalid("prerequisites", reason);
    let mut graph: HashMap<FlagName, Vec<FlagName>> = HashMap::new();
    let mut variants: HashMap<FlagName, Vec<_>> = HashMap::new();
    for flag in tx.flags_of(owner)? {
        let required = flag.targeting.prerequisites.iter().map(|p| p.flag.clone());
        graph.insert(flag.name.clone(), required.collect());
        let names = flag.targeting.variants.iter().map(|v| v.name.clone());
        variants.insert(flag.name, names.collect());
    }
    for p in prerequisites {
        let Some(theirs) = variants.get(&p.flag) else {
            return Err(Error::not_found(Resource::Flag, &p.flag));
        };
        if let Some(missing) = p.variants.iter().find(|v| !theirs.contains(v)) {
            return Err(invalid(format!(
                "flag {} has no variant {missing:?}",
                p.flag
            )));
        }
    }
    graph.insert(
        name.clone(),
        prerequisites.iter().map(|p| p.flag.clone()).collect(),
    );
    if let Some(cycle) = path_back(&graph, name) {
        let cycle: Vec<_> = cycle.iter().map(FlagName::as_str).collect();
        return Err(invalid(format!(
            "a flag may not require itself: {}",
            cycle.join(" requires ")
        )));
    }
    let mut required_by: HashMap<FlagName, Vec<FlagName>> = HashMap::new();
    for (flag, required) in &graph {
        for r in required {
            required_by.entry(r.clone()).or_default().push(flag.clone());
        }
    }
    let below = longest(&graph, name, &mut HashMap::new());
    let above = longest(&required_by, name, &mut HashMap::new());
    if above + below > MAX_PREREQUISITE_DEPTH {
        return Err(invalid(format!(
            "prerequisites may chain at most {MAX_PREREQUISITE_DEPTH} flags deep; through \
             {name} the chain would be {}",
            above + below
        )));
    }
    Ok(())
}

/// A path from `start` along `edges` back to `start`, if there is one.
fn path_back(edges: &HashMap<FlagName, Vec<FlagName>>, start: &FlagName) -> Option<Vec<FlagName>> {
    // Depth first, each flag entered once; `path` the flags from `start` to the current one.
    let mut seen = HashSet::new();
    let mut path = vec![start.clone()];
    let mut stack = vec![edges.get(start).map_or(&[][..], Vec::as_slice).iter()];
    while let Some(next) = stack.last_mut() {
        match next.next() {
            Some(flag) if flag == start => {
                path.push(flag.clone());
                return Some(path);
            }
            Some(flag) if seen.insert(flag.clone()) => {
                path.push(flag.clone());
                stack.push(edges.get(flag).map_or(&[][..], Vec::as_slice).iter());
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

/// The most edges on a path from `flag` along `edges` (which make no cycle).
fn longest(
    edges: &HashMap<FlagName, Vec<FlagName>>,
    flag: &FlagName,
    known: &mut HashMap<FlagName, usize>,
) -> usize {
    if let Some(&length) = known.get(flag) {
        return length;
    }
    let length = edges.get(flag).map_or(0, |next| {
        next.iter()
            .map(|n| 1 + longest(edges, n, known))
            .max()
            .unwrap_or(0)
    });
    known.insert(flag.clone(), length);
    length
}

/// Creates or replaces the owner's segment (an owner may have as many segments as its flag
/// quota allows flags), appending a flag-set event for each flag whose rules name it: they
/// may answer differently now.
pub(crate) fn set_segment(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    owner: UserId,
    name: &SegmentName,
    description: Option<String>,
    constraints: Vec<Constraint>,
) -> Result<Segment> {
    check_constraints(&constraints)?;
    if let Some(d) = &description {
        let chars = d.chars().count();
        if chars > MAX_SEGMENT_DESCRIPTION_CHARS {
            return Err(Error::invalid(
                "description",
                format!("may be at most {MAX_SEGMENT_DESCRIPTION_CHARS} characters, got {chars}"),
            ));
        }
    }
    let at = now;
    let now = now.to_datetime();
    let created_at = match tx.segment(owner, name)? {
        Some(existing) => existing.created_at,
        None if tx.count_segments_of(owner)? >= quota => {
            return Err(Error::QuotaExceeded {
                what: Resource::Segment,
                limit: quota,
            })
        }
        None => now,
    };
    let segment = Segment {
        name: name.clone(),
        description,
        constraints,
        created_at,
        updated_at: now,
    };
    tx.put_segment(owner, &segment)?;
    for flag in flags_naming(tx, owner, name)? {
        // Written again, unchanged: a change of the flag itself made at the same time is
        // then a write of the same record, which storage orders, event and all.
        tx.put_flag(owner, &flag)?;
        event::append(tx, owner, at, set_change(&flag))?;
    }
    Ok(segment)
}

/// The owner's flags whose rules name the segment.
fn flags_naming(tx: &mut dyn Tx, owner: UserId, segment: &SegmentName) -> Result<Vec<Flag>> {
    let mut flags = tx.flags_of(owner)?;
    flags.retain(|f| {
        f.targeting
            .rules
            .iter()
            .any(|r| r.segments.contains(segment))
    });
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(flags)
}

/// The owner's segment.
pub(crate) fn segment(tx: &mut dyn Tx, owner: UserId, name: &SegmentName) -> Result<Segment> {
    tx.segment(owner, name)?
        .ok_or_else(|| Error::not_found(Resource::Segment, name))
}

/// Deletes a segment no rule names.
pub(crate) fn delete_segment(tx: &mut dyn Tx, owner: UserId, name: &SegmentName) -> Result<()> {
    let users: Vec<_> = flags_naming(tx, owner, name)?
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "segment {name} is used by rules of {}: remove those rules first",
            users.join(", ")
        )));
    }
    if tx.delete_segment(owner, name)? {
        Ok(())
    } else {
        Err(Error::not_found(Resource::Segment, name))
    }
}

/// The owner's segments, by name.
pub(crate) fn segments(tx: &mut dyn Tx, owner: UserId) -> Result<Vec<Segment>> {
    let mut segments = tx.segments_of(owner)?;
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(segments)
}
