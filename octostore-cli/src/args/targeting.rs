//! `flag rule`, `flag segment`, `flag variant`, `flag prereq` and `flag eval`: a flag's
//! targeting, beside the other flag commands of `args.rs`.

use clap::{ArgGroup, Args, Subcommand};

/// How `--where` spells a condition (also in the `--help` of the commands that take it).
pub const WHERE_HELP: &str = "\
Conditions (--where, repeatable; a context must meet every one):
  --where 'PROPERTY OPERATOR VALUE[,VALUE...]'
    --where 'plan IN pro,enterprise'
    --where 'country NOT_IN us,ca'
    --where 'app.version SEMVER_GT 2.0.0'
    --where 'email ~STR_ENDS_WITH @acme.com'   ~ before the operator: ignore case
    --where 'plan !STR_CONTAINS trial'         ! before the operator: negate it (!~ for both)
  Operators (their names in any case):
    IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, STR_ENDS_WITH   a list of values (any)
    NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE                   a number
    DATE_BEFORE, DATE_AFTER            an RFC 3339 instant (2026-12-24T18:00:00Z) or a date
    SEMVER_EQ, SEMVER_GT, SEMVER_LT    a semantic version (a pre-release is before its release)
  Values are split at commas, each trimmed. A value holding a comma, or spaces at its ends,
  needs --where-json with the API's JSON of a condition:
    --where-json '{\"property\":\"city\",\"operator\":\"IN\",\"values\":[\"Paris, TX\"]}'
  (fields: property, operator, values or value, case_insensitive, inverted).
  A property the context lacks fails the condition, negated or not. `subject` is the
  context's subject (--subject of `flag eval`); `currentTime`, unless the context gives it,
  is the store's clock (DATE_AFTER on it schedules a flag). Quote each --where whole, in
  single quotes: a shell expands ! in double quotes.";

/// The conditions of a rule or segment, as typed.
#[derive(Debug, Args)]
pub struct WhereArgs {
    /// A condition on the evaluation context: 'PROPERTY OPERATOR VALUE[,VALUE...]'
    /// (repeatable; see below).
    #[arg(long = "where", value_name = "CONDITION")]
    pub conditions: Vec<String>,
    /// A condition as the API's JSON ({"property", "operator", "values"...}): for values
    /// holding commas (repeatable).
    #[arg(long, value_name = "JSON")]
    pub where_json: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule: the flag is on for a context meeting all its conditions and segments.
    ///
    /// Rules are tried in order: the first a context meets (and whose --percentage admits its
    /// subject) turns the flag on, reason TARGETING_MATCH; with rules, a context none turns on
    /// is off, reason DEFAULT. The flag's own on/off and percentage apply first. Prints the
    /// flag's rules, as `flag rule list`.
    #[command(after_help = WHERE_HELP)]
    Add {
        /// The flag.
        name: String,
        #[command(flatten)]
        conditions: WhereArgs,
        /// A segment (`flag segment set`) whose conditions must hold too (repeatable).
        #[arg(long = "segment", value_name = "SEGMENT")]
        segments: Vec<String>,
        /// Only for this percentage of the matching subjects (0 to 100; by subject, as the
        /// flag's own percentage).
        #[arg(long)]
        percentage: Option<i64>,
        /// Where the rule goes: 0 first (default: last).
        #[arg(long, value_name = "N")]
        position: Option<usize>,
    },
    /// The flag's rules, in order.
    ///
    /// One a line: its index, then the options of `flag rule add` that make it. --json: the
    /// flag, its rules among its fields.
    List {
        /// The flag.
        name: String,
    },
    /// Remove the rule at INDEX, as `flag rule list` numbers them (exit 3 if there is none).
    ///
    /// Prints the flag's rules left, renumbered.
    Remove {
        /// The flag.
        name: String,
        /// The rule's index, 0 first.
        index: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Create or replace a segment: conditions that rules of any of your flags name.
    ///
    /// A rule names it with `flag rule add --segment`. You may have as many segments as your
    /// flag quota allows flags. The whole segment is replaced: omitting --description clears it. Prints it, as
    /// `flag segment get`.
    #[command(
        after_help = WHERE_HELP,
        group(ArgGroup::new("condition").required(true).multiple(true).args(["conditions", "where_json"]))
    )]
    Set {
        /// The segment.
        segment: String,
        #[command(flatten)]
        conditions: WhereArgs,
        /// What the segment is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Print a segment: its name and the options of `flag segment set` that make it.
    Get {
        /// The segment.
        segment: String,
    },
    /// Delete a segment (refused, exit 2, while a rule names it: remove those rules first).
    Delete {
        /// The segment.
        segment: String,
    },
    /// Your segments, one a line, as `flag segment get` prints each.
    List,
}

#[derive(Debug, Subcommand)]
pub enum VariantCommand {
    /// Replace the flag's variants: a subject the flag is on for gets one, by weight.
    ///
    /// The same subject gets the same variant every time. Prints them, as `flag variant
    /// list`.
    ///
    /// Each VARIANT=WEIGHT[:TYPE:PAYLOAD]: blue=500:string:#0000ff, big=1:number:42,
    /// cfg=1:json:'{"a":1}', or just control=50 (no payload: the flag's value is then only on
    /// or off). TYPE is string, number, boolean or json, the same for every variant. The
    /// weights are shares of their sum (1 to 100000).
    Set {
        /// The flag.
        name: String,
        /// The variants, each VARIANT=WEIGHT[:TYPE:PAYLOAD].
        #[arg(
            value_name = "VARIANT=WEIGHT[:TYPE:PAYLOAD]",
            required_unless_present = "none",
            conflicts_with = "none"
        )]
        variants: Vec<String>,
        /// Remove every variant.
        #[arg(long)]
        none: bool,
    },
    /// The flag's variants, one a line, as `flag variant set` takes them.
    List {
        /// The flag.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrereqCommand {
    /// Replace the flags the flag requires: off for a context any of them is off for.
    ///
    /// Off (reason PREREQUISITE_FAILED) also when one is on another variant than those
    /// named: a kill switch for many flags at once. Prints them, as `flag prereq list`.
    ///
    /// Each PARENT, or PARENT=VARIANT[,VARIANT...] to require it on one of those variants.
    /// Refused (exit 2) if the flags would require each other in a loop.
    Set {
        /// The flag.
        name: String,
        /// The flags required, each PARENT[=VARIANT[,VARIANT...]].
        #[arg(
            value_name = "PARENT[=VARIANT[,VARIANT...]]",
            required_unless_present = "none",
            conflicts_with = "none"
        )]
        parents: Vec<String>,
        /// Require no flag.
        #[arg(long)]
        none: bool,
    },
    /// The flags the flag requires, one a line, as `flag prereq set` takes them.
    List {
        /// The flag.
        name: String,
    },
}

/// `flag eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The flag.
    pub name: String,
    /// The context's subject (OpenFeature's targeting key): who percentages and variants
    /// split by, and the `subject` of conditions. None by default (`flag get` uses your
    /// login): a flag that splits by subject then refuses, exit 2.
    #[arg(long)]
    pub subject: Option<String>,
    /// A property of the context (repeatable): KEY=VALUE gives text, which every operator
    /// reads as it needs (a number, date, version or true/false; zip=007 stays 007 for IN);
    /// KEY:=JSON gives a JSON string, number or boolean, as an SDK would send it
    /// ('plan:="pro"', 'seats:=10').
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    pub props: Vec<String>,
}

#[cfg(test)]
mod tests {
    use octostore_core::Operator;

    #[test]
    fn the_where_help_names_every_operator() {
        for o in Operator::ALL {
            assert!(super::WHERE_HELP.contains(o.name()), "{}", o.name());
        }
    }
}
