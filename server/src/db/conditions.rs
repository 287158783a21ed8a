//! WHERE clauses made of the filters that are set, each value a bind parameter: the one
//! builder of dynamic SQL in this crate (dump search, driver statistics, problem lists).
//!
//! The placeholders are `$1`, `$2`... in the order values are added: both backends accept that
//! form (see the module comment of [`super`]). Not `sqlx::QueryBuilder`: over the `Any` driver
//! it writes `?` placeholders (`AnyArguments` keeps the default `format_placeholder`, since the
//! backend is only known at execution) and sqlx passes the text to PostgreSQL unchanged, which
//! rejects `?`.

/// A bind parameter.
enum Arg {
    Text(Option<String>),
    Int(i64),
}

/// SQL conditions joined by AND, and their parameters numbered `$1...` in the order added.
#[derive(Default)]
pub(super) struct Conditions {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Conditions {
    fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    /// Adds a text parameter; returns its placeholder.
    pub(super) fn text(&mut self, v: impl Into<String>) -> String {
        self.arg(Arg::Text(Some(v.into())))
    }

    /// Adds a text parameter that may be NULL; returns its placeholder.
    pub(super) fn text_or_null(&mut self, v: Option<String>) -> String {
        self.arg(Arg::Text(v))
    }

    /// Adds an integer parameter; returns its placeholder.
    pub(super) fn int(&mut self, v: i64) -> String {
        self.arg(Arg::Int(v))
    }

    /// Adds a condition (its values added with [`Conditions::text`] or [`Conditions::int`]).
    pub(super) fn and(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// `column = $n` when `value` is set.
    pub(super) fn equals(&mut self, column: &str, value: Option<&str>) {
        if let Some(v) = value {
            let p = self.text(v);
            self.and(format!("{column} = {p}"));
        }
    }

    /// `column >= $n` and `column < $m` for the bounds that are set.
    pub(super) fn within(&mut self, column: &str, since: Option<i64>, until: Option<i64>) {
        if let Some(t) = since {
            let p = self.int(t);
            self.and(format!("{column} >= {p}"));
        }
        if let Some(t) = until {
            let p = self.int(t);
            self.and(format!("{column} < {p}"));
        }
    }

    /// ` WHERE a AND b ...`, or nothing.
    pub(super) fn where_clause(&self) -> String {
        self.joined(" WHERE ")
    }

    /// ` AND a AND b ...`, or nothing: the conditions after a WHERE written by hand.
    pub(super) fn and_clause(&self) -> String {
        self.joined(" AND ")
    }

    fn joined(&self, lead: &str) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("{lead}{}", self.clauses.join(" AND "))
        }
    }

    /// Binds the parameters to `q`, made from the text these conditions are part of.
    pub(super) fn bind<'q>(&self, mut q: AnyQuery<'q>) -> AnyQuery<'q> {
        for a in &self.args {
            q = match a {
                Arg::Text(t) => q.bind(t.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_order_values_are_added() {
        let mut c = Conditions::default();
        assert_eq!(c.where_clause(), "");
        assert_eq!(c.and_clause(), "");
        c.equals("d.tenant", None);
        c.equals("d.tenant", Some("a"));
        c.within("d.created_at", None, Some(5));
        let p = c.text_or_null(None);
        c.and(format!("x IS {p}"));
        assert_eq!(
            c.where_clause(),
            " WHERE d.tenant = $1 AND d.created_at < $2 AND x IS $3"
        );
        assert_eq!(
            c.and_clause(),
            " AND d.tenant = $1 AND d.created_at < $2 AND x IS $3"
        );
    }

    /// Why this builder exists: sqlx's own writes `?` over the `Any` driver, which PostgreSQL
    /// rejects. When this fails, `sqlx::QueryBuilder` can replace [`Conditions`].
    #[test]
    fn sqlx_query_builder_writes_question_marks_over_any() {
        let mut q = sqlx::QueryBuilder::<sqlx::Any>::new("SELECT ");
        q.push_bind(1i64);
        assert_eq!(q.sql(), "SELECT ?");
    }

    #[tokio::test]
    async fn values_are_bound_in_order() {
        let db = super::super::open_memory().await;
        let mut c = Conditions::default();
        let a = c.text("it's");
        let b = c.int(7);
        let sql = format!("SELECT {a} AS a, {b} AS b");
        let row = c.bind(sqlx::query(&sql)).fetch_one(&db).await.unwrap();
        use sqlx::Row;
        assert_eq!(row.try_get::<String, _>("a").unwrap(), "it's");
        assert_eq!(row.try_get::<i64, _>("b").unwrap(), 7);
    }
}
