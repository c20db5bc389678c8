//! What a PostgreSQL dump is made of before it is compressed: plain SQL (`psql` restores it) or pg_dump's
//! custom archive (`pg_restore` restores it, and can restore chosen tables only). MariaDB dumps are always
//! SQL. The choice is a policy's; each backup's blob name says which it is (`.sql.zst`, `.dump.zst`), so a
//! backup restores whatever its policy says now.

use serde::{Deserialize, Serialize};

use crate::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// `pg_dump --format=plain`: SQL, readable by any tool.
    #[default]
    Plain,
    /// `pg_dump --format=custom --compress=0` (compressed by us): restored by `pg_restore --exit-on-error`,
    /// whole or table by table.
    Custom,
}

impl DumpFormat {
    /// The file name's part before the compression's: `sql` or `dump`.
    pub fn stem(self) -> &'static str {
        match self {
            DumpFormat::Plain => "sql",
            DumpFormat::Custom => "dump",
        }
    }

    pub fn is_plain(&self) -> bool {
        *self == DumpFormat::Plain
    }

    /// A stored backup's format, from its name (`…/20261201_020304_ab12cd34.dump.zst.age`).
    pub fn of_name(name: &str) -> DumpFormat {
        let file = name.rsplit('/').next().unwrap_or(name);
        match file.split('.').skip(1).any(|part| part == "dump") {
            true => DumpFormat::Custom,
            false => DumpFormat::Plain,
        }
    }
}

/// Most tables one selective restore takes.
pub const MAX_TABLES: usize = 100;

/// A table a selective restore names: `schema.table` as the database spells them (unquoted; the first dot
/// ends the schema), or a bare `table` in `public`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn parse(name: &str) -> Option<TableName> {
        let (schema, table) = name.split_once('.').unwrap_or(("public", name));
        let ok = |s: &str| !s.is_empty() && s.chars().count() <= 63 && !s.chars().any(char::is_control);
        (ok(schema) && ok(table)).then(|| TableName { schema: schema.into(), table: table.into() })
    }

    /// A manifest's table name (`public."Order Items"`: as pg_dump's `COPY` quotes it), unquoted.
    pub fn of_manifest(name: &str) -> Option<TableName> {
        let mut parts = Vec::new();
        let mut chars = name.chars().peekable();
        loop {
            let mut part = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            part.push('"');
                        }
                        '"' => break,
                        c => part.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    part.push(c);
                    chars.next();
                }
            }
            parts.push(part);
            match chars.next() {
                None => break,
                Some('.') => continue,
                Some(_) => return None,
            }
        }
        match <[String; 2]>::try_from(parts) {
            Ok([schema, table]) => Some(TableName { schema, table }),
            Err(_) => None,
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// 1 to [`MAX_TABLES`] distinct names of [`crate::schema::TABLE_NAME`]'s form.
pub fn tables_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": MAX_TABLES,
        "uniqueItems": true,
        "items": { "type": "string", "pattern": crate::schema::TABLE_NAME },
    })
}

/// The `tables` of a restore request: 1 to [`MAX_TABLES`] names (one table named twice, as `t` and
/// `public.t`, counts once).
pub fn parse_tables(names: &[String]) -> Result<Vec<TableName>, FieldError> {
    if names.is_empty() || names.len() > MAX_TABLES {
        return Err(FieldError::new("tables", format!("name 1 to {MAX_TABLES} tables, or leave it out")));
    }
    let mut out: Vec<TableName> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let t = TableName::parse(name).ok_or_else(|| {
            FieldError::new(format!("tables[{i}]"), "must be `schema.table` or `table`, each part 1 to 63 characters")
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backups_name_says_its_format() {
        assert_eq!(DumpFormat::of_name("postgresql/db/20261201_020304_ab.dump.zst.age"), DumpFormat::Custom);
        assert_eq!(DumpFormat::of_name("postgresql/db/20261201_020304_ab.dump.gz"), DumpFormat::Custom);
        assert_eq!(DumpFormat::of_name("postgresql/dump/20261201_020304_ab.sql.zst"), DumpFormat::Plain);
        assert_eq!(DumpFormat::of_name("x.sql.gz"), DumpFormat::Plain);
        assert_eq!(serde_json::to_string(&DumpFormat::Custom).unwrap(), r#""custom""#);
    }

    #[test]
    fn table_names_are_read_as_the_database_and_the_dump_spell_them() {
        let t = |s: &str, n: &str| TableName { schema: s.into(), table: n.into() };
        assert_eq!(TableName::parse("orders"), Some(t("public", "orders")));
        assert_eq!(TableName::parse("sales.Order Items"), Some(t("sales", "Order Items")));
        assert_eq!(TableName::parse("x."), None);
        assert_eq!(TableName::of_manifest("public.orders"), Some(t("public", "orders")));
        assert_eq!(TableName::of_manifest(r#""My ""S"".x"."Order Items""#), Some(t(r#"My "S".x"#, "Order Items")));
        assert_eq!(TableName::of_manifest("`orders`"), None);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_tables(&names(&["a", "public.a"])).unwrap().len(), 1);
        assert_eq!(parse_tables(&names(&["a", "s.\u{7}"])).unwrap_err().field, "tables[1]");
        assert_eq!(parse_tables(&[]).unwrap_err().field, "tables");
        assert_eq!(parse_tables(&names(&["a", "s.b"])).unwrap().len(), 2);
    }
}
