//! The versioned schema files (`migrations/<backend>/V<n>__<name>.sql`), applied at start
//! by refinery in order; a database that has a migration this binary does not know (made
//! by a newer cirrus) is refused rather than used.

use super::DbError;
use refinery::error::Kind;
use refinery::{Migration, Runner};

/// The newest schema version this binary knows.
pub(crate) const LATEST: u32 = 2;

const SQLITE: &[(&str, &str)] = &[
    (
        "V1__initial",
        include_str!("migrations/sqlite/V1__initial.sql"),
    ),
    ("V2__web", include_str!("migrations/sqlite/V2__web.sql")),
];
const POSTGRES: &[(&str, &str)] = &[
    (
        "V1__initial",
        include_str!("migrations/postgres/V1__initial.sql"),
    ),
    ("V2__web", include_str!("migrations/postgres/V2__web.sql")),
];

fn runner(files: &[(&str, &str)]) -> Result<Runner, DbError> {
    let migrations = files
        .iter()
        .map(|(name, sql)| Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    // Each migration in its own transaction, applied in order; refinery's defaults refuse
    // a database whose applied migrations differ from (divergent) or go beyond (missing)
    // these files.
    Ok(Runner::new(&migrations)
        .set_abort_divergent(true)
        .set_abort_missing(true))
}

fn map(e: refinery::Error) -> DbError {
    match e.kind() {
        Kind::MissingVersion(m) => DbError::NewerSchema {
            found: m.to_string(),
            known: LATEST,
        },
        _ => DbError::Migrate(e),
    }
}

pub(super) fn sqlite(conn: &mut rusqlite::Connection) -> Result<(), DbError> {
    let report = runner(SQLITE)?.run(conn).map_err(map)?;
    log_applied(&report);
    Ok(())
}

pub(super) fn postgres(client: &mut ::postgres::Client) -> Result<(), DbError> {
    let report = runner(POSTGRES)?.run(client).map_err(map)?;
    log_applied(&report);
    Ok(())
}

fn log_applied(report: &refinery::Report) {
    for m in report.applied_migrations() {
        log::info!("database schema: applied migration {m}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_every_version_and_the_same_tables() {
        assert_eq!(super::SQLITE.len(), super::LATEST as usize);
        assert_eq!(super::POSTGRES.len(), super::LATEST as usize);
        for ((a, s), (b, p)) in super::SQLITE.iter().zip(super::POSTGRES) {
            assert_eq!(a, b);
            let tables = |sql: &str| {
                sql.lines()
                    .filter(|l| l.starts_with("CREATE "))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            assert_eq!(tables(s), tables(p), "{a}");
        }
    }
}
