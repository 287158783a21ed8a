//! Facets of the problems list: what a problem's dumps name (verdict drivers, the module a
//! crash happened in, pool tags, bug check, kernel build) and its workflow status, each value
//! with the number of problems that have it, and the filters those values make.
//!
//! Everything is read within the viewer's rights, as the list's counts are: a customer's
//! facets come from its own dumps only, so a value another tenant's dump of the same problem
//! carries is neither counted nor matched for it.
//!
//! Counting is disjunctive, as in a search engine's facets: each facet is counted over the
//! problems the *other* filters select, so choosing `driver=leaky.sys` still shows how many
//! problems every other driver has under the same status, tag, bug check and build.

use super::conditions::Conditions;
use super::problems::ProblemRow;
use super::Db;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most values one facet lists (the most frequent first).
pub const MAX_VALUES: usize = 30;

/// What one problem's dumps (those the viewer may see) name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    /// Lower-case module names of the verdicts.
    pub drivers: BTreeSet<String>,
    /// Pool tags of the verdicts, as written.
    pub tags: BTreeSet<String>,
    /// Bug check code (`0x..`) to its name, when the report gave one.
    pub bugchecks: BTreeMap<String, Option<String>>,
    pub builds: BTreeSet<i64>,
}

/// The attributes of every problem `tenant` (None = every tenant) has dumps in.
pub async fn attributes(
    db: &Db,
    tenant: Option<&str>,
) -> Result<HashMap<String, Attributes>, sqlx::Error> {
    let mut scope = Conditions::default();
    scope.equals("d.tenant", tenant);
    // DISTINCT: one row per combination, not per dump (a problem's dumps mostly agree).
    let sql = format!(
        "SELECT DISTINCT s.problem_id, s.verdict_drivers, s.crash_module, s.verdict_tags, \
         s.bugcheck_code, s.bugcheck_name, s.build FROM dumps d JOIN report_summaries s ON s.sha256 = d.analysis \
         WHERE s.problem_id IS NOT NULL{}",
        scope.and_clause()
    );
    let mut out: HashMap<String, Attributes> = HashMap::new();
    for r in scope.bind(sqlx::query(&sql)).fetch_all(db).await? {
        let a = out.entry(r.try_get("problem_id")?).or_default();
        let drivers: Option<String> = r.try_get("verdict_drivers")?;
        let drivers = drivers.unwrap_or_default();
        a.drivers.extend(
            drivers
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        // A crash counts under the driver it happened in.
        a.drivers
            .extend(r.try_get::<Option<String>, _>("crash_module")?);
        let tags: Option<String> = r.try_get("verdict_tags")?;
        let tags = tags.unwrap_or_default();
        a.tags.extend(
            tags.split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        if let Some(code) = r.try_get::<Option<String>, _>("bugcheck_code")? {
            let name: Option<String> = r.try_get("bugcheck_name")?;
            let slot = a.bugchecks.entry(code).or_default();
            if slot.is_none() {
                *slot = name;
            }
        }
        if let Some(b) = r.try_get::<Option<i64>, _>("build")? {
            a.builds.insert(b);
        }
    }
    Ok(out)
}

/// A bug check as filtered on: a code (`0x7e`, `7E`, `0x0000007E` are one code) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bugcheck {
    Code(String),
    Name(String),
}

impl Bugcheck {
    /// A hex number is a code; anything else a name (`BAD_POOL_HEADER`, any case).
    pub fn parse(s: &str) -> Bugcheck {
        match super::report_index::normalize_bugcheck_code(s) {
            Some(code) => Bugcheck::Code(code),
            None => Bugcheck::Name(s.trim().to_ascii_uppercase()),
        }
    }

    fn matches(&self, all: &BTreeMap<String, Option<String>>) -> bool {
        match self {
            Bugcheck::Code(c) => all.contains_key(c),
            Bugcheck::Name(n) => all
                .values()
                .flatten()
                .any(|name| name.eq_ignore_ascii_case(n)),
        }
    }
}

/// The filters of a problems list (None: no filter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub status: Option<String>,
    /// Lower-case (module names are indexed lower-case).
    pub driver: Option<String>,
    /// Exact: pool tags are case-sensitive.
    pub tag: Option<String>,
    pub bugcheck: Option<Bugcheck>,
    pub build: Option<i64>,
}

/// The facets, in the order pages show them.
pub const DIMENSIONS: [Dimension; 5] = [
    Dimension::Status,
    Dimension::Driver,
    Dimension::Tag,
    Dimension::Bugcheck,
    Dimension::Build,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Status,
    Driver,
    Tag,
    Bugcheck,
    Build,
}

impl Dimension {
    /// The query parameter and JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::Status => "status",
            Dimension::Driver => "driver",
            Dimension::Tag => "tag",
            Dimension::Bugcheck => "bugcheck",
            Dimension::Build => "build",
        }
    }
}

impl Filter {
    fn without(&self, d: Dimension) -> Filter {
        let mut f = self.clone();
        match d {
            Dimension::Status => f.status = None,
            Dimension::Driver => f.driver = None,
            Dimension::Tag => f.tag = None,
            Dimension::Bugcheck => f.bugcheck = None,
            Dimension::Build => f.build = None,
        }
        f
    }

    /// Whether a problem (its row and the attributes of the dumps the viewer sees) passes.
    pub fn matches(&self, row: &ProblemRow, a: &Attributes) -> bool {
        self.status
            .as_ref()
            .is_none_or(|s| &row.workflow.status == s)
            && self.driver.as_ref().is_none_or(|d| a.drivers.contains(d))
            && self.tag.as_ref().is_none_or(|t| a.tags.contains(t))
            && self
                .bugcheck
                .as_ref()
                .is_none_or(|b| b.matches(&a.bugchecks))
            && self.build.is_none_or(|b| a.builds.contains(&b))
    }
}

/// One facet value: `value` goes in the query string, `label` on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub value: String,
    pub label: String,
    pub count: usize,
}

/// The values of one dimension a problem has.
fn values(d: Dimension, row: &ProblemRow, a: &Attributes) -> Vec<(String, String)> {
    let same = |v: &String| (v.clone(), v.clone());
    match d {
        Dimension::Status => vec![same(&row.workflow.status)],
        Dimension::Driver => a.drivers.iter().map(same).collect(),
        Dimension::Tag => a.tags.iter().map(same).collect(),
        Dimension::Bugcheck => a
            .bugchecks
            .iter()
            .map(|(code, name)| {
                let label = match name {
                    Some(n) => format!("{n} ({code})"),
                    None => code.clone(),
                };
                (code.clone(), label)
            })
            .collect(),
        Dimension::Build => a
            .builds
            .iter()
            .map(|b| (b.to_string(), b.to_string()))
            .collect(),
    }
}

/// Counts of one dimension over the problems the other filters select: the most frequent
/// first (then by value), at most [`MAX_VALUES`]. Status lists every state, even at 0.
pub fn count(
    d: Dimension,
    rows: &[ProblemRow],
    attrs: &HashMap<String, Attributes>,
    filter: &Filter,
) -> Vec<Count> {
    let others = filter.without(d);
    let none = Attributes::default();
    let mut counts: BTreeMap<String, (String, usize)> = BTreeMap::new();
    if d == Dimension::Status {
        for s in super::problems::STATUSES {
            counts.insert(s.to_string(), (s.to_string(), 0));
        }
    }
    for row in rows {
        let a = attrs.get(&row.id).unwrap_or(&none);
        if !others.matches(row, a) {
            continue;
        }
        for (value, label) in values(d, row, a) {
            counts.entry(value).or_insert((label, 0)).1 += 1;
        }
    }
    let mut out: Vec<Count> = counts
        .into_iter()
        .map(|(value, (label, count))| Count {
            value,
            label,
            count,
        })
        .collect();
    if d == Dimension::Status {
        let rank = |v: &str| super::problems::STATUSES.iter().position(|s| *s == v);
        out.sort_by_key(|c| rank(&c.value));
    } else {
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    }
    out.truncate(MAX_VALUES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::problems::Workflow;

    fn row(id: &str, status: &str) -> ProblemRow {
        ProblemRow {
            id: id.into(),
            kind: "pool".into(),
            title: id.into(),
            dumps: 1,
            customers: 1,
            first_seen: 0,
            last_seen: 0,
            workflow: Workflow {
                status: status.into(),
                ..Default::default()
            },
        }
    }

    fn attrs(drivers: &[&str], tags: &[&str], code: &str, build: i64) -> Attributes {
        let name = match code {
            "0xe2" => "MANUALLY_INITIATED_CRASH",
            _ => "BAD_POOL_HEADER",
        };
        Attributes {
            drivers: drivers.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            bugchecks: [(code.to_string(), Some(name.into()))].into(),
            builds: [build].into(),
        }
    }

    fn fixture() -> (Vec<ProblemRow>, HashMap<String, Attributes>) {
        let rows = vec![row("a", "new"), row("b", "investigating"), row("c", "new")];
        let attrs = [
            ("a", attrs(&["leaky.sys"], &["Leak"], "0xe2", 19041)),
            (
                "b",
                attrs(&["leaky.sys", "other.sys"], &["Oth"], "0xe2", 22621),
            ),
            ("c", attrs(&["other.sys"], &["Leak"], "0x19", 19041)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        (rows, attrs)
    }

    fn pairs(c: &[Count]) -> Vec<(&str, usize)> {
        c.iter().map(|c| (c.value.as_str(), c.count)).collect()
    }

    #[test]
    fn each_facet_counts_over_the_other_filters() {
        let (rows, attrs) = fixture();
        let all = Filter::default();
        assert_eq!(
            pairs(&count(Dimension::Driver, &rows, &attrs, &all)),
            [("leaky.sys", 2), ("other.sys", 2)]
        );
        assert_eq!(
            pairs(&count(Dimension::Status, &rows, &attrs, &all)),
            [
                ("new", 2),
                ("investigating", 1),
                ("fixed", 0),
                ("wont-fix", 0)
            ]
        );
        // driver=leaky.sys: the driver facet still lists every driver (its own filter is
        // left out), the other facets count only a and b.
        let f = Filter {
            driver: Some("leaky.sys".into()),
            ..Default::default()
        };
        assert_eq!(
            pairs(&count(Dimension::Driver, &rows, &attrs, &f)),
            [("leaky.sys", 2), ("other.sys", 2)]
        );
        assert_eq!(
            pairs(&count(Dimension::Build, &rows, &attrs, &f)),
            [("19041", 1), ("22621", 1)]
        );
        assert_eq!(
            pairs(&count(Dimension::Tag, &rows, &attrs, &f)),
            [("Leak", 1), ("Oth", 1)]
        );
        let bc = count(Dimension::Bugcheck, &rows, &attrs, &Filter::default());
        assert_eq!(bc[0].value, "0xe2");
        assert_eq!(bc[0].label, "MANUALLY_INITIATED_CRASH (0xe2)");
    }

    #[test]
    fn filters_match_codes_names_and_exact_tags() {
        let (rows, attrs) = fixture();
        let kept = |f: &Filter| -> Vec<&str> {
            rows.iter()
                .filter(|r| f.matches(r, &attrs[&r.id]))
                .map(|r| r.id.as_str())
                .collect()
        };
        let by_code = Filter {
            bugcheck: Some(Bugcheck::parse("0x00000019")),
            ..Default::default()
        };
        assert_eq!(kept(&by_code), ["c"]);
        let by_name = Filter {
            bugcheck: Some(Bugcheck::parse("manually_initiated_crash")),
            status: Some("new".into()),
            ..Default::default()
        };
        assert_eq!(kept(&by_name), ["a"]);
        let wrong_case = Filter {
            tag: Some("leak".into()),
            ..Default::default()
        };
        assert!(kept(&wrong_case).is_empty(), "pool tags are case-sensitive");
        let build = Filter {
            build: Some(19041),
            tag: Some("Leak".into()),
            ..Default::default()
        };
        assert_eq!(kept(&build), ["a", "c"]);
    }
}
