//! The one-shot commands: `kb build`, `token add` and `check`.

use std::path::Path;
use std::process::ExitCode;

use fleet_common::exit::Exit;

use anyhow::Context;
use fleet_common::kind::{self, FileKind};
use fleet_common::permissions::EntryLists;
use fleet_kb::build::{BuildOptions, build_from_dir};
use time::OffsetDateTime;

use crate::cli::{
    CheckArgs, KbBuildArgs, TokenAddArgs, TokenListArgs, TokenRevokeArgs, UserAddArgs,
};
use crate::config::DataFiles;

/// `kb build`: documentation directory → kb.db, published atomically.
pub fn kb_build(args: KbBuildArgs) -> anyhow::Result<()> {
    let project = match args.project {
        Some(p) => p,
        None => args
            .docs
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "docs".to_string()),
    };
    let opts = BuildOptions {
        project,
        version: args.project_version,
        built_at: source_date_epoch()?,
        embed_model: args.embed_model,
    };
    let report = build_from_dir(&args.docs, &args.out, &opts)?;
    eprintln!(
        "built {}: {} files, {} chunks, build id {}",
        args.out.display(),
        report.files,
        report.chunks,
        report.build_id
    );
    for skipped in &report.skipped {
        eprintln!("skipped {skipped}");
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention, as RFC 3339.
/// Without it a KB records no build time, so rebuilding the same documents
/// gives a byte-identical file (and an unchanged ETag for the sync tools).
pub fn source_date_epoch() -> anyhow::Result<Option<String>> {
    let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let secs: i64 = value
        .trim()
        .parse()
        .context("SOURCE_DATE_EPOCH is not a number of seconds")?;
    let t = OffsetDateTime::from_unix_timestamp(secs).context("SOURCE_DATE_EPOCH out of range")?;
    Ok(Some(
        t.format(&time::format_description::well_known::Rfc3339)?,
    ))
}

/// Parse a lifetime such as `90d`, `12h`, `30m`, `45s` or `never`.
pub fn parse_lifetime(text: &str) -> anyhow::Result<Option<time::Duration>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("lifetime {text:?}: expected e.g. 90d, 12h, 30m or never"))?;
    anyhow::ensure!(n > 0, "lifetime {text:?} must be positive");
    Ok(Some(match unit {
        "d" => time::Duration::days(n),
        "h" => time::Duration::hours(n),
        "m" => time::Duration::minutes(n),
        "s" | "" => time::Duration::seconds(n),
        _ => anyhow::bail!("lifetime {text:?}: unit must be d, h, m or s"),
    }))
}

/// `token add`: mint a token, store its hash, print the token once.
pub fn token_add(args: TokenAddArgs) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let expires_at = parse_lifetime(&args.expires)?.map(|d| now + d);
    let tools = names(args.tools);
    let databases = names(args.databases);
    let grant = EntryLists {
        tools: tools.as_deref(),
        databases: databases.as_deref(),
        role: role_flag(args.role.as_deref())?,
    };
    let secret = add_token_to_file(
        &args.file,
        &args.annotation,
        expires_at,
        args.database.as_deref(),
        grant,
    )?;
    eprintln!(
        "added a token to {} (shown once; only its SHA-256 is stored):",
        args.file.display()
    );
    println!("{secret}");
    Ok(())
}

/// The names of a `--tools` / `--databases` flag: trimmed, empty ones
/// dropped, so that `--tools ""` is the empty list (none).
fn names(flag: Option<Vec<String>>) -> Option<Vec<String>> {
    flag.map(|list| {
        list.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// A `--role` flag, checked: `""` (no role) or a PostgreSQL role name.
fn role_flag(role: Option<&str>) -> anyhow::Result<Option<&str>> {
    if let Some(r) = role.map(str::trim)
        && !r.is_empty()
        && !fleet_common::role::valid_name(r)
    {
        anyhow::bail!("--role: {}", fleet_common::role::INVALID);
    }
    Ok(role)
}

/// Mint a token into `file` (created if missing); returns the secret.
pub fn add_token_to_file(
    file: &Path,
    annotation: &str,
    expires_at: Option<OffsetDateTime>,
    database: Option<&str>,
    grant: EntryLists<'_>,
) -> anyhow::Result<String> {
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let now = OffsetDateTime::now_utc();
    let new = fleet_common::tokens::mint(rand::random(), now);
    let text = fleet_common::tokens::add_entry(
        &existing, &new, annotation, expires_at, database, grant, now,
    )?;
    fleet_common::publish::write_atomic(file, text.as_bytes(), true)?;
    Ok(new.secret)
}

/// `token list`: one line per token (id, expiry, database, role,
/// permissions, annotation), never its hash.
pub fn token_list(args: TokenListArgs) -> anyhow::Result<()> {
    print!("{}", list_tokens(&args.file, OffsetDateTime::now_utc())?);
    Ok(())
}

/// The table `token list` prints.
pub fn list_tokens(file: &Path, now: OffsetDateTime) -> anyhow::Result<String> {
    let bytes = fleet_common::kind::FileKind::Tokens
        .read(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let entries = fleet_common::tokens::parse(&bytes)?;
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let mut out = String::from("ID\tEXPIRES\tDATABASE\tROLE\tPERMISSIONS\tANNOTATION\n");
    for e in &entries {
        let expires = match e.expires_at {
            None => "never".to_string(),
            Some(t) if e.is_expired(now) => format!("{} (expired)", fmt(t)),
            Some(t) => fmt(t),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            e.id,
            expires,
            e.database.as_deref().unwrap_or("-"),
            e.role.as_deref().unwrap_or("-"),
            e.permissions.describe(),
            e.annotation.as_deref().unwrap_or("")
        ));
    }
    Ok(out)
}

/// `token revoke`: remove one token; every instance stops accepting it at
/// its next reload of the published file.
pub fn token_revoke(args: TokenRevokeArgs) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let text = fleet_common::tokens::remove_entry(&existing, &args.id)?;
    fleet_common::publish::write_atomic(&args.file, text.as_bytes(), true)?;
    eprintln!("revoked token {} in {}", args.id, args.file.display());
    Ok(())
}

/// `user add`: add a user or set a user's password. The password comes from
/// `MCP_PASSWORD` or the first line of stdin and is never echoed or logged.
pub fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let password = match std::env::var("MCP_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    anyhow::ensure!(
        !password.is_empty(),
        "empty password: set MCP_PASSWORD or pipe it on stdin"
    );
    let scheme = match args.hash.as_str() {
        "argon2id" => fleet_common::users::HashScheme::Argon2id,
        _ => fleet_common::users::HashScheme::Bcrypt,
    };
    let hash = crate::auth::users::hash_password(&password, scheme)?;
    let existing = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.file.display())),
    };
    let tools = names(args.tools);
    let databases = names(args.databases);
    let grant = EntryLists {
        tools: tools.as_deref(),
        databases: databases.as_deref(),
        role: role_flag(args.role.as_deref())?,
    };
    let text = fleet_common::users::upsert(
        &existing,
        &args.username,
        &hash,
        !args.disabled,
        &args.annotation,
        grant,
    )?;
    fleet_common::publish::write_atomic(&args.file, text.as_bytes(), true)?;
    eprintln!(
        "user {:?} written to {}",
        args.username,
        args.file.display()
    );
    Ok(())
}

/// `check`: validate every file of a data directory.
pub fn check(args: CheckArgs) -> ExitCode {
    let files = DataFiles::in_dir(&args.data_dir);
    let mut failed = false;
    for (path, required) in [
        (&files.tokens, true),
        (&files.users, false),
        (&files.session_key, false),
        (&files.kb, true),
        (&files.tools, false),
    ] {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.exists() {
            if required {
                println!("ERROR {name}: missing");
                failed = true;
            } else {
                println!("skip  {name}: not present (optional)");
            }
            continue;
        }
        match kind::verify(
            FileKind::from_name(&name),
            path,
            &fleet_common::deadline::Deadline::none(),
        ) {
            Ok(summary) => println!("ok    {name}: {summary}"),
            Err(err) => {
                println!("ERROR {err}");
                failed = true;
            }
        }
    }
    if failed {
        Exit::Failed.into()
    } else {
        Exit::Ok.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("never").unwrap(), None);
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Some(time::Duration::days(30))
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Some(time::Duration::hours(12))
        );
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("3w").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn token_add_stores_only_the_hash_and_the_token_works() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.yaml");
        let a = add_token_to_file(&file, "first", None, None, EntryLists::default()).unwrap();
        let b =
            add_token_to_file(&file, "second", None, Some("prod"), EntryLists::default()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&a) && !text.contains(&b));
        let store = crate::auth::tokens::TokenStore::new(
            fleet_common::tokens::parse(text.as_bytes()).unwrap(),
        );
        assert_eq!(store.len(), 2);
        let now = OffsetDateTime::now_utc();
        assert!(store.authenticate(&a, now).is_ok());
        assert_eq!(
            store.authenticate(&b, now).unwrap().database.as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn token_add_writes_permissions_and_token_list_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.yaml");
        let tools = names(Some(vec!["search_knowledgebase".into(), " ".into()]));
        let none = names(Some(vec!["".into()]));
        let grant = EntryLists {
            tools: tools.as_deref(),
            databases: none.as_deref(),
            role: role_flag(Some("analyst")).unwrap(),
        };
        let secret = add_token_to_file(&file, "kb only", None, None, grant).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let store = crate::auth::tokens::TokenStore::new(
            fleet_common::tokens::parse(text.as_bytes()).unwrap(),
        );
        let now = OffsetDateTime::now_utc();
        let p = store.authenticate(&secret, now).unwrap().permissions;
        assert!(p.allows_tool("search_knowledgebase") && !p.allows_tool("query_database"));
        assert!(!p.allows("search_knowledgebase", "prod"));
        assert_eq!(
            store
                .authenticate(&secret, now)
                .unwrap()
                .role_for("t", "d")
                .as_deref(),
            Some("analyst")
        );
        let listed = list_tokens(&file, now).unwrap();
        assert!(
            listed.contains("\t-\tanalyst\ttools=search_knowledgebase databases=none\tkb only\n"),
            "{listed}"
        );
        assert!(
            listed.starts_with("ID\tEXPIRES\tDATABASE\tROLE\tPERMISSIONS\t"),
            "{listed}"
        );
        // A bad name is refused before the file is touched, never quoted.
        let e = role_flag(Some("SECRET\u{7}")).unwrap_err().to_string();
        assert!(e.contains("role name") && !e.contains("SECRET"), "{e}");
        assert_eq!(role_flag(Some("")).unwrap(), Some(""));
    }

    #[test]
    fn token_list_shows_no_hash_and_revoke_stops_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.yaml");
        let a = add_token_to_file(&file, "first", None, None, EntryLists::default()).unwrap();
        let b =
            add_token_to_file(&file, "second", None, Some("prod"), EntryLists::default()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let entries = fleet_common::tokens::parse(text.as_bytes()).unwrap();
        let now = OffsetDateTime::now_utc();
        let listed = list_tokens(&file, now).unwrap();
        assert_eq!(listed.lines().count(), 3, "{listed}");
        assert!(listed.contains("\tprod\t-\tall\tsecond\n"), "{listed}");
        for e in &entries {
            assert!(!listed.contains(&hex::encode(e.hash)), "a hash is listed");
        }
        assert!(!listed.contains(&a) && !listed.contains(&b));
        let first = entries
            .iter()
            .find(|e| e.annotation.as_deref() == Some("first"))
            .unwrap();
        token_revoke(TokenRevokeArgs {
            file: file.clone(),
            id: first.id.clone(),
        })
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let store = crate::auth::tokens::TokenStore::new(
            fleet_common::tokens::parse(text.as_bytes()).unwrap(),
        );
        assert_eq!(store.len(), 1);
        assert!(store.authenticate(&a, now).is_err());
        assert!(store.authenticate(&b, now).is_ok());
        assert!(
            token_revoke(TokenRevokeArgs {
                file,
                id: first.id.clone(),
            })
            .is_err()
        );
    }
}
