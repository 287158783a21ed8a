//! The orders of a dump list (`sort=` / `order=` of `/dumps` and `GET /api/v1/dumps`) and the
//! keyset cursors that page through them.
//!
//! Only the columns listed in [`Column::ALL`] can be sorted on: each maps to a fixed SQL
//! expression that is never NULL, so rows compare and page the same way on SQLite and
//! PostgreSQL. The dump id breaks ties, in the same direction: the order is total, so keyset
//! pages neither skip nor repeat a row while uploads arrive. A cursor carries the sort value
//! of the last row as the database computed it (read back from the query), never recomputed
//! here (case folding differs between Rust and SQL).

/// A sortable column of the dump list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Column {
    /// Upload time (the default, newest first).
    #[default]
    Uploaded,
    /// File name (or id when the upload had none), case-insensitive.
    Name,
    /// Size of the dump as stored.
    Size,
    /// Analysis state.
    Status,
    /// Bug check name (or code), case-insensitive.
    Bugcheck,
    /// Tenant (support and admin lists).
    Customer,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Column::Uploaded,
        Column::Name,
        Column::Size,
        Column::Status,
        Column::Bugcheck,
        Column::Customer,
    ];

    /// The query parameter value.
    pub fn key(self) -> &'static str {
        match self {
            Column::Uploaded => "uploaded",
            Column::Name => "name",
            Column::Size => "size",
            Column::Status => "status",
            Column::Bugcheck => "bugcheck",
            Column::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.key() == s.trim())
    }

    /// The SQL it sorts by (over `ITEM_SELECT`'s aliases); never NULL.
    pub(super) fn expr(self) -> &'static str {
        match self {
            Column::Uploaded => "d.created_at",
            Column::Name => "LOWER(COALESCE(d.original_name, d.id))",
            Column::Size => "d.size",
            Column::Status => "COALESCE(j.state, 'failed')",
            Column::Bugcheck => "LOWER(COALESCE(s.bugcheck_name, s.bugcheck_code, ''))",
            Column::Customer => "d.tenant",
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Column::Uploaded | Column::Size)
    }

    /// The direction a column sorts in when first chosen: numbers and times largest first,
    /// text A to Z.
    pub fn natural_descending(self) -> bool {
        self.is_int()
    }
}

/// A column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Sort {
        Sort {
            column: Column::Uploaded,
            descending: true,
        }
    }
}

/// The sort value of a row, as the cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(String),
}

/// Where the next page starts: after the row with this sort value and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: Value,
    pub id: String,
}

/// Longest text sort value a cursor may carry (names are bounded well below).
const MAX_CURSOR_TEXT: usize = 2048;

impl Sort {
    /// Reads `sort=` and `order=` (`asc`/`desc`; absent: the column's natural direction).
    /// Err names the parameter that is not one of the accepted values.
    pub fn parse(sort: Option<&str>, order: Option<&str>) -> Result<Sort, SortError> {
        let sort = sort.map(str::trim).filter(|s| !s.is_empty());
        let column = match sort {
            None => Column::Uploaded,
            Some(s) => Column::parse(s).ok_or_else(|| SortError::Column(s.to_string()))?,
        };
        let descending = match order.map(str::trim).filter(|s| !s.is_empty()) {
            None => column.natural_descending(),
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(SortError::Order(o.to_string())),
        };
        Ok(Sort { column, descending })
    }

    /// `ORDER BY` of this sort, the id breaking ties in the same direction.
    pub(super) fn order_by(self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!("{} {dir}, d.id {dir}", self.column.expr())
    }

    /// The comparison that keeps rows after the cursor's (`$v`, `$id`: placeholders).
    pub(super) fn after(self, v: &str, id: &str) -> String {
        let op = if self.descending { "<" } else { ">" };
        let e = self.column.expr();
        format!("({e} {op} {v} OR ({e} = {v} AND d.id {op} {id}))")
    }

    /// Parses a cursor made for this sort (`<value>.<id>`). None when it is not one.
    pub fn cursor(self, text: &str) -> Option<Cursor> {
        let (value, id) = text.rsplit_once('.')?;
        let id_ok =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok || value.len() > MAX_CURSOR_TEXT {
            return None;
        }
        let value = if self.column.is_int() {
            Value::Int(value.parse().ok()?)
        } else {
            Value::Text(value.to_string())
        };
        Some(Cursor {
            value,
            id: id.to_string(),
        })
    }

    /// The cursor text of a row.
    pub fn cursor_text(value: &Value, id: &str) -> String {
        match value {
            Value::Int(n) => format!("{n}.{id}"),
            Value::Text(t) => format!("{t}.{id}"),
        }
    }

    pub(super) fn read_value(self, r: &super::Row) -> Result<Value, sqlx::Error> {
        use sqlx::Row;
        Ok(if self.column.is_int() {
            Value::Int(r.try_get("sort_key")?)
        } else {
            Value::Text(r.try_get("sort_key")?)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortError {
    #[error(
        "Cannot sort by \u{201c}{0}\u{201d}: choose one of uploaded, name, size, status, bugcheck, customer."
    )]
    Column(String),
    #[error("Unknown order \u{201c}{0}\u{201d}: choose asc or desc.")]
    Order(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_parameters_are_whitelisted() {
        assert_eq!(Sort::parse(None, None), Ok(Sort::default()));
        let s = Sort::parse(Some("name"), None).unwrap();
        assert_eq!((s.column, s.descending), (Column::Name, false));
        let s = Sort::parse(Some("size"), Some("asc")).unwrap();
        assert_eq!((s.column, s.descending), (Column::Size, false));
        assert!(matches!(
            Sort::parse(Some("d.id; DROP TABLE dumps"), None),
            Err(SortError::Column(_))
        ));
        assert!(matches!(
            Sort::parse(Some("name"), Some("sideways")),
            Err(SortError::Order(_))
        ));
        assert_eq!(
            Sort::default().order_by(),
            "d.created_at DESC, d.id DESC",
            "the default order is the list's historical one"
        );
    }

    #[test]
    fn cursors_carry_the_value_of_their_sort() {
        let by_size = Sort::parse(Some("size"), None).unwrap();
        assert_eq!(
            by_size.cursor("123.abc"),
            Some(Cursor {
                value: Value::Int(123),
                id: "abc".into()
            })
        );
        assert_eq!(by_size.cursor("big.abc"), None);
        let by_name = Sort::parse(Some("name"), None).unwrap();
        // A name may hold dots: the id is after the last one.
        let c = by_name.cursor("leak.v2.dmp.abc").unwrap();
        assert_eq!(c.value, Value::Text("leak.v2.dmp".into()));
        assert_eq!(Sort::cursor_text(&c.value, &c.id), "leak.v2.dmp.abc");
        assert_eq!(by_name.cursor("x.a'b"), None);
    }
}
