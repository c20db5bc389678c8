//! A PostgreSQL custom archive's table of contents, as `pg_restore --list --verbose` prints it, and the list
//! of entries a selective restore hands back to `pg_restore --use-list`: the whole schema, the rows of the
//! chosen tables only. No I/O here.
//!
//! Left out besides the other tables' rows: materialized views' data (a refresh over some tables' rows
//! would be wrong, not empty), large objects, and each foreign key between a chosen and an unchosen table
//! (its rows would not be there to satisfy it).

use std::collections::{BTreeSet, HashMap};

use dilux_domain::format::TableName;

/// One entry: `3368; 0 16387 TABLE DATA public orders owner` and its `;<tab>depends on: 216` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    /// From the description on: `TABLE DATA public orders owner`.
    pub what: String,
    pub deps: Vec<u32>,
}

pub fn parse_list(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if let Some(deps) = line.strip_prefix(";").and_then(|l| l.trim_start().strip_prefix("depends on:")) {
            if let Some(last) = entries.last_mut() {
                last.deps.extend(deps.split_whitespace().filter_map(|d| d.parse::<u32>().ok()));
            }
            continue;
        }
        if line.starts_with(';') {
            continue;
        }
        // `ID; catalog-oid oid DESC …`
        let Some((id, rest)) = line.split_once("; ") else { continue };
        let Ok(id) = id.trim().parse() else { continue };
        let mut words = rest.splitn(3, ' ');
        let (Some(_), Some(_), Some(what)) = (words.next(), words.next(), words.next()) else { continue };
        entries.push(Entry { id, what: what.trim_end().to_string(), deps: vec![] });
    }
    entries
}

impl Entry {
    fn is(&self, desc: &str) -> bool {
        self.what.strip_prefix(desc).is_some_and(|r| r.starts_with(' '))
    }

    /// `TABLE DATA <schema> <table> <owner>` of `t` (the owner is the last word).
    fn holds_rows_of(&self, t: &TableName) -> bool {
        self.what
            .strip_prefix(&format!("TABLE DATA {} {} ", t.schema, t.table))
            .is_some_and(|owner| !owner.is_empty() && !owner.contains(' '))
    }

    /// `schema.table` of a `TABLE DATA` entry (names with spaces may be cut wrong: for messages only).
    fn table_named(&self) -> Option<String> {
        let rest = self.what.strip_prefix("TABLE DATA ")?;
        let (schema, rest) = rest.split_once(' ')?;
        let (table, _owner) = rest.rsplit_once(' ')?;
        Some(format!("{schema}.{table}"))
    }
}

/// What a selective restore restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `--use-list` text: one entry id per line.
    pub list: String,
    /// Foreign keys left out (their list lines), for the log.
    pub left_out: Vec<String>,
}

/// Chooses the entries restoring `chosen`'s rows into the whole schema; names the first table the archive
/// does not hold.
pub fn select(entries: &[Entry], chosen: &[TableName]) -> Result<Selection, String> {
    let mut rows = BTreeSet::new();
    for t in chosen {
        let found = entries.iter().find(|e| e.holds_rows_of(t)).ok_or_else(|| {
            let held: Vec<String> = entries.iter().filter_map(Entry::table_named).take(20).collect();
            let held = if held.is_empty() { "no tables".to_string() } else { held.join(", ") };
            format!("table `{t}` is not in this backup (it holds {held})")
        })?;
        rows.insert(found.id);
    }
    let by_id: HashMap<u32, &Entry> = entries.iter().map(|e| (e.id, e)).collect();
    let tables: BTreeSet<u32> = entries.iter().filter(|e| e.is("TABLE")).map(|e| e.id).collect();
    // The tables whose rows come back: those the chosen `TABLE DATA` entries depend on.
    let chosen_tables: BTreeSet<u32> =
        rows.iter().flat_map(|id| by_id[id].deps.iter().copied()).filter(|d| tables.contains(d)).collect();
    // A constraint's tables: those it depends on, directly or through the key (constraint, index) it references.
    let tables_of = |e: &Entry| -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        for d in &e.deps {
            if tables.contains(d) {
                out.insert(*d);
            } else if let Some(k) = by_id.get(d).filter(|k| k.is("CONSTRAINT") || k.is("INDEX")) {
                out.extend(k.deps.iter().copied().filter(|x| tables.contains(x)));
            }
        }
        out
    };
    let (mut list, mut left_out) = (String::new(), Vec::new());
    for e in entries {
        let keep = if e.is("TABLE DATA") {
            rows.contains(&e.id)
        } else if e.is("MATERIALIZED VIEW DATA") || e.what.starts_with("BLOB") || e.what.starts_with("LARGE OBJECT") {
            false
        } else if e.is("FK CONSTRAINT") {
            let of = tables_of(e);
            let mixed = !of.is_subset(&chosen_tables) && !of.is_disjoint(&chosen_tables);
            if mixed {
                left_out.push(e.what.clone());
            }
            !mixed
        } else {
            true
        };
        if keep {
            list.push_str(&format!("{}\n", e.id));
        }
    }
    Ok(Selection { list, left_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore -l -v` of a database with `a` (serial key), `b` referencing `a`, `x.c`, a view and a
    /// materialized view over `a` (trimmed from a real run).
    const LIST: &str = ";\n; Archive created at 2026-12-04 18:14:26 UTC\n;\n;\n; Selected TOC Entries:\n;\n\
3375; 0 0 ENCODING - ENCODING \n\
6; 2615 16385 SCHEMA - x postgres\n\
216; 1259 16387 TABLE public a postgres\n\
215; 1259 16386 SEQUENCE public a_id_seq postgres\n\
;\tdepends on: 216\n\
217; 1259 16395 TABLE public b postgres\n\
221; 1259 16417 MATERIALIZED VIEW public mv postgres\n\
;\tdepends on: 216\n\
219; 1259 16406 TABLE x c postgres\n\
;\tdepends on: 6\n\
3368; 0 16387 TABLE DATA public a postgres\n\
;\tdepends on: 216\n\
3369; 0 16395 TABLE DATA public b postgres\n\
;\tdepends on: 217\n\
3371; 0 16406 TABLE DATA x c postgres\n\
;\tdepends on: 219\n\
3380; 0 0 SEQUENCE SET public a_id_seq postgres\n\
;\tdepends on: 215\n\
3217; 2606 16394 CONSTRAINT public a a_pkey postgres\n\
;\tdepends on: 216\n\
3222; 2606 16400 FK CONSTRAINT public b b_a_id_fkey postgres\n\
;\tdepends on: 217 3217\n\
3372; 0 16417 MATERIALIZED VIEW DATA public mv postgres\n\
;\tdepends on: 221 3374\n";

    fn ids(s: &Selection) -> Vec<u32> {
        s.list.lines().map(|l| l.parse().unwrap()).collect()
    }

    fn t(schema: &str, table: &str) -> TableName {
        TableName { schema: schema.into(), table: table.into() }
    }

    #[test]
    fn the_list_is_read_with_its_dependencies() {
        let e = parse_list(LIST);
        assert_eq!(e.len(), 14);
        assert_eq!(e[0], Entry { id: 3375, what: "ENCODING - ENCODING".into(), deps: vec![] });
        assert_eq!(e.iter().find(|e| e.id == 3222).unwrap().deps, vec![217, 3217]);
    }

    #[test]
    fn a_selection_keeps_the_schema_and_only_the_chosen_rows() {
        let e = parse_list(LIST);
        let s = select(&e, &[t("x", "c")]).unwrap();
        let got = ids(&s);
        assert!(got.contains(&3371) && !got.contains(&3368) && !got.contains(&3369), "{got:?}");
        assert!(got.contains(&216) && got.contains(&6) && got.contains(&3217) && got.contains(&3380));
        assert!(got.contains(&3222), "b and a both come back empty: their key holds");
        assert!(!got.contains(&3372), "no refresh over missing rows");
        assert!(s.left_out.is_empty());
    }

    #[test]
    fn a_foreign_key_to_a_table_not_chosen_is_left_out() {
        let e = parse_list(LIST);
        let s = select(&e, &[t("public", "b")]).unwrap();
        assert!(!ids(&s).contains(&3222));
        assert_eq!(s.left_out, vec!["FK CONSTRAINT public b b_a_id_fkey postgres".to_string()]);
        let both = select(&e, &[t("public", "b"), t("public", "a")]).unwrap();
        assert!(ids(&both).contains(&3222) && both.left_out.is_empty());
    }

    #[test]
    fn a_table_the_archive_lacks_is_named_with_what_it_holds() {
        let e = parse_list(LIST);
        let err = select(&e, &[t("public", "zz")]).unwrap_err();
        assert_eq!(err, "table `public.zz` is not in this backup (it holds public.a, public.b, x.c)");
        assert!(select(&e, &[t("public", "a b")]).is_err(), "no prefix match across names");
    }
}
