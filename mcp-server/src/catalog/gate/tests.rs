use std::sync::Arc;

use fleet_common::permissions::Grant;

use super::*;
use crate::pg::DatabaseConfig;

const QUERY: Purpose<'static> = Purpose::Tool(pgt::QUERY_DATABASE);

const TOOLS: &[u8] = b"tools:\n  on_a:\n    description: d\n    database: a\n    statement: SELECT 1\n  on_b:\n    description: d\n    database: b\n    statement: SELECT 1\n  anywhere:\n    description: d\n    statement: SELECT 1\n";

fn databases() -> Databases {
    let cfg = |name: &str| DatabaseConfig {
        name: name.into(),
        host: Some("127.0.0.1".into()),
        port: Some(1),
        user: Some("nobody".into()),
        database: Some("nothing".into()),
        ..Default::default()
    };
    Databases::new(vec![cfg("a"), cfg("b")]).unwrap()
}

fn principal(tools: Option<&[&str]>, dbs: Option<&[&str]>, bound: Option<&str>) -> Principal {
    let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
    Principal {
        subject: "token:t".into(),
        database: bound.map(str::to_string),
        permissions: Arc::new(Permissions::from_lists(list(tools), list(dbs))),
        roles: crate::auth::Roles::Login,
    }
}

fn builtins() -> Vec<Tool> {
    fleet_common::tools_file::builtins::TOOLS
        .iter()
        .map(|name| {
            let mut t = Tool::default();
            t.name = name.to_string().into();
            t
        })
        .collect()
}

fn names(tools: Vec<Tool>) -> Vec<String> {
    let mut n: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
    n.sort();
    n
}

fn denied_count(metrics: &Metrics, tool: &str) -> Option<String> {
    let text = metrics.encode();
    let prefix = format!("mcp_tool_calls_denied_total{{tool=\"{tool}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn the_list_shows_only_what_the_credential_may_use() {
    let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
    let dbs = databases();
    let all = names(listed(&catalog, &dbs, None, builtins()));
    assert_eq!(all.len(), builtins().len() + 3, "{all:?}");
    let unrestricted = principal(None, None, None);
    assert_eq!(
        names(listed(&catalog, &dbs, Some(&unrestricted), builtins())),
        all
    );

    let kb = principal(Some(&["search_knowledgebase"]), None, None);
    assert_eq!(
        names(listed(&catalog, &dbs, Some(&kb), builtins())),
        ["search_knowledgebase"]
    );
    // databases: [b]: the tool on a is hidden; the one without a
    // database runs on b, the first the credential may use.
    let on_b = principal(None, Some(&["b"]), None);
    let shown = names(listed(&catalog, &dbs, Some(&on_b), builtins()));
    assert!(shown.contains(&"on_b".to_string()) && shown.contains(&"anywhere".to_string()));
    assert!(!shown.contains(&"on_a".to_string()), "{shown:?}");
    assert!(shown.contains(&pgt::QUERY_DATABASE.to_string()));
    // No database at all: no Postgres tool, built-in or curated.
    let none = principal(None, Some(&[]), None);
    let shown = names(listed(&catalog, &dbs, Some(&none), builtins()));
    assert_eq!(
        shown,
        [
            "authenticate_user",
            "generate_embedding",
            "search_knowledgebase"
        ]
    );
    assert!(!reaches(&dbs, Some(&none), Purpose::SystemInfo));
    assert!(reaches(&dbs, Some(&on_b), Purpose::SystemInfo));
}

#[test]
fn calls_are_refused_by_name_and_counted_with_bounded_labels() {
    let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
    let dbs = databases();
    let metrics = Metrics::new("test");
    let kb = principal(Some(&["search_knowledgebase"]), None, None);
    let e = admit(&catalog, &dbs, Some(&kb), pgt::QUERY_DATABASE, &metrics)
        .err()
        .unwrap();
    assert_eq!(e, "this credential may not call the tool query_database");
    assert_eq!(
        denied_count(&metrics, pgt::QUERY_DATABASE).as_deref(),
        Some("1")
    );
    assert!(admit(&catalog, &dbs, Some(&kb), "search_knowledgebase", &metrics).is_ok());
    // authenticate_user stays callable, and is not counted.
    assert!(admit(&catalog, &dbs, Some(&kb), "authenticate_user", &metrics).is_ok());
    // A curated tool: its name is a label; a name that is no tool is not.
    assert!(admit(&catalog, &dbs, Some(&kb), "on_a", &metrics).is_err());
    assert_eq!(denied_count(&metrics, "on_a").as_deref(), Some("1"));
    for junk in ["no-such-tool-1", "no-such-tool-2"] {
        assert!(admit(&catalog, &dbs, Some(&kb), junk, &metrics).is_err());
    }
    assert_eq!(denied_count(&metrics, "unknown").as_deref(), Some("2"));
    assert!(!metrics.encode().contains("no-such-tool"));
    // A curated tool on a database the credential may not use.
    let on_b = principal(None, Some(&["b"]), None);
    let e = admit(&catalog, &dbs, Some(&on_b), "on_a", &metrics)
        .err()
        .unwrap();
    assert!(e.contains("may not use the database \"a\""), "{e}");
    assert_eq!(denied_count(&metrics, "on_a").as_deref(), Some("2"));
    assert!(matches!(
        admit(&catalog, &dbs, Some(&on_b), "on_b", &metrics),
        Ok(Target::Curated(_))
    ));
    // Unrestricted: everything, nothing counted.
    let all = principal(None, None, None);
    assert!(admit(&catalog, &dbs, Some(&all), pgt::QUERY_DATABASE, &metrics).is_ok());
    assert_eq!(
        denied_count(&metrics, pgt::QUERY_DATABASE).as_deref(),
        Some("1")
    );
}

#[test]
fn the_database_is_one_the_credential_may_use() {
    let dbs = databases();
    let pick = |p: &Principal, requested: Option<&str>| {
        database(&dbs, Some(p), QUERY, requested).map(|d| d.name().to_string())
    };
    let all = principal(None, None, None);
    assert_eq!(pick(&all, None).unwrap(), "a");
    assert_eq!(pick(&all, Some("b")).unwrap(), "b");
    assert_eq!(database(&dbs, None, QUERY, None).unwrap().name(), "a");
    // Limited to one: that one by default, the other refused by name.
    let only_b = principal(None, Some(&["b"]), None);
    assert_eq!(pick(&only_b, None).unwrap(), "b");
    assert_eq!(pick(&only_b, Some(" b ")).unwrap(), "b");
    let e = pick(&only_b, Some("a")).unwrap_err();
    assert!(e.is_denied());
    assert_eq!(
        e.to_string(),
        "this credential may not use the database \"a\""
    );
    // An unknown name lists only what the credential may use.
    let two = principal(None, Some(&["b", "c"]), None);
    let e = pick(&two, Some("c")).unwrap_err();
    assert_eq!(e.kind(), "unknown_database");
    assert!(e.to_string().ends_with("configured databases: b"), "{e}");
    // None allowed.
    let none = principal(None, Some(&[]), None);
    assert!(pick(&none, None).unwrap_err().is_denied());
    // The tokens.yaml binding still holds, and must be allowed too.
    let bound_a = principal(None, None, Some("a"));
    assert_eq!(pick(&bound_a, None).unwrap(), "a");
    assert_eq!(pick(&bound_a, Some("b")).unwrap_err().kind(), "forbidden");
    let bound_outside = principal(None, Some(&["b"]), Some("a"));
    assert!(pick(&bound_outside, None).unwrap_err().is_denied());
    let bound_inside = principal(None, Some(&["a", "b"]), Some("a"));
    assert_eq!(pick(&bound_inside, None).unwrap(), "a");
    assert_eq!(
        pick(&bound_inside, Some("b")).unwrap_err().kind(),
        "forbidden"
    );
}

fn list(l: &[&str]) -> Option<Vec<String>> {
    Some(l.iter().map(|s| s.to_string()).collect())
}

fn merged(grants: &[Grant]) -> Principal {
    Principal {
        subject: "oauth:x".into(),
        database: None,
        permissions: Arc::new(Permissions::from_grants(grants)),
        roles: crate::auth::Roles::Login,
    }
}

/// Issue 29, finding 1, at the gate: a search grant beside an analyst's
/// grant on `b` opens neither `a` nor anything else to the analyst's tools.
#[test]
fn a_grant_without_databases_opens_none_to_another_grants_tools() {
    let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
    let dbs = databases();
    let metrics = Metrics::new("test");
    let p = merged(&[
        Grant::from_lists(list(&["search_knowledgebase"]), None),
        Grant::from_lists(
            list(&[pgt::QUERY_DATABASE, "anywhere", "on_a"]),
            list(&["b"]),
        ),
    ]);
    let pick = |tool: &str, requested: Option<&str>| {
        database(&dbs, Some(&p), Purpose::Tool(tool), requested).map(|d| d.name().to_string())
    };
    assert_eq!(pick(pgt::QUERY_DATABASE, None).unwrap(), "b");
    let e = pick(pgt::QUERY_DATABASE, Some("a")).unwrap_err();
    assert!(e.is_denied(), "{e}");
    // The search tool's grant names no database; it opens none.
    assert!(pick("search_knowledgebase", Some("a")).is_ok());
    let shown = names(listed(&catalog, &dbs, Some(&p), builtins()));
    assert_eq!(
        shown,
        ["anywhere", pgt::QUERY_DATABASE, "search_knowledgebase"],
        "on_a runs on a, where the grant that names it does not reach"
    );
    assert!(admit(&catalog, &dbs, Some(&p), "on_a", &metrics).is_err());
    assert!(matches!(
        admit(&catalog, &dbs, Some(&p), "anywhere", &metrics),
        Ok(Target::Curated(_))
    ));
}

/// Issue 29, finding 4: `system_info` runs SQL on a database. A credential
/// whose tools leave out the built-in Postgres tools reaches no database
/// through it, whatever its `databases:` say; one that may run them reads
/// it where it may run them.
#[test]
fn system_info_needs_a_postgres_tool_on_the_database() {
    let dbs = databases();
    let kb_only = principal(Some(&["search_knowledgebase"]), None, None);
    assert!(!reaches(&dbs, Some(&kb_only), Purpose::SystemInfo));
    let e = database(&dbs, Some(&kb_only), Purpose::SystemInfo, None).unwrap_err();
    assert!(e.is_denied(), "{e}");
    let curated_only = principal(Some(&["on_a"]), None, None);
    assert!(!reaches(&dbs, Some(&curated_only), Purpose::SystemInfo));
    let counts_on_b = merged(&[
        Grant::from_lists(list(&["search_knowledgebase"]), None),
        Grant::from_lists(list(&[pgt::COUNT_ROWS]), list(&["b"])),
    ]);
    assert!(reaches(&dbs, Some(&counts_on_b), Purpose::SystemInfo));
    let on = database(&dbs, Some(&counts_on_b), Purpose::SystemInfo, None).unwrap();
    assert_eq!(on.name(), "b");
    let all = principal(None, None, None);
    assert_eq!(
        database(&dbs, Some(&all), Purpose::SystemInfo, None)
            .unwrap()
            .name(),
        "a"
    );
}

/// Issue 29, finding 5: a prompt is shown only to a caller who sees every
/// tool it names; the built-in prompts name the Postgres tools.
#[test]
fn prompts_are_shown_with_the_tools_they_name() {
    let file = [
        TOOLS,
        b"prompts:\n  orders:\n    template: Call on_a for the orders.\n  \
          any:\n    template: Search with search_knowledgebase.\n",
    ]
    .concat();
    let catalog = Catalog::new(fleet_common::tools_file::parse(&file).unwrap());
    let dbs = databases();
    let visible = |p: &Principal| {
        let tools = listed(&catalog, &dbs, Some(p), builtins());
        let tools: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        visible_prompts(&catalog, &tools)
    };
    let all = visible(&principal(None, None, None));
    assert!(all.contains(&"orders".to_string()) && all.contains(&"any".to_string()));
    assert!(all.contains(&"explore-database".to_string()), "{all:?}");
    let kb = visible(&principal(Some(&["search_knowledgebase"]), None, None));
    assert!(kb.contains(&"any".to_string()), "{kb:?}");
    assert!(!kb.contains(&"orders".to_string()), "{kb:?}");
    assert!(!kb.contains(&"explore-database".to_string()), "{kb:?}");
    let on_b = visible(&principal(None, Some(&["b"]), None));
    assert!(
        !on_b.contains(&"orders".to_string()),
        "on_a is hidden: {on_b:?}"
    );
}

/// Every grant over the gate's tools and databases: each list absent or a
/// subset of the names.
fn every_grant(tools: &[&str], dbs: &[&str]) -> Vec<Grant> {
    fn subsets(names: &[&str]) -> Vec<Option<Vec<String>>> {
        let mut out = vec![None];
        for mask in 0..(1u32 << names.len()) {
            let subset: Vec<&str> = (0..names.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| names[i])
                .collect();
            out.push(list(&subset));
        }
        out
    }
    let mut out = Vec::new();
    for t in subsets(tools) {
        for d in subsets(dbs) {
            out.push(Grant::from_lists(t.clone(), d));
        }
    }
    out
}

/// The property at the gate: whatever two grants a credential carries, a
/// call admitted and given a database runs there only if one of the two
/// grants allows that tool on that database; a tool is listed only if one
/// grant names it; and `system_info` opens only where one grant allows a
/// built-in Postgres tool.
#[test]
fn the_gate_never_runs_a_tool_where_no_single_grant_allows_it() {
    let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
    let dbs = databases();
    let metrics = Metrics::new("test");
    let tools = [
        pgt::QUERY_DATABASE,
        "search_knowledgebase",
        "on_a",
        "anywhere",
    ];
    let grants = every_grant(&tools, &["a", "b"]);
    let mut runs = 0usize;
    for (i, g1) in grants.iter().enumerate() {
        for g2 in grants.iter().skip(i).step_by(3) {
            let set = [g1.clone(), g2.clone()];
            let p = merged(&set);
            let single = |tool: &str, db: &str| set.iter().any(|g| g.allows(tool, db));
            for name in names(listed(&catalog, &dbs, Some(&p), builtins())) {
                if name != AUTHENTICATE_USER {
                    assert!(
                        set.iter().any(|g| g.allows_tool(&name)),
                        "{name} by {set:?}"
                    );
                }
            }
            for tool in tools {
                let target = admit(&catalog, &dbs, Some(&p), tool, &metrics);
                let requested = match target {
                    Ok(Target::Curated(t)) => vec![t.database.as_deref()],
                    Ok(Target::Router) => vec![None, Some("a"), Some("b")],
                    Err(_) => continue,
                };
                for r in requested {
                    if let Ok(db) = database(&dbs, Some(&p), Purpose::Tool(tool), r) {
                        assert!(
                            single(tool, db.name()),
                            "{tool} on {} by {set:?}",
                            db.name()
                        );
                        runs += 1;
                    }
                }
            }
            if let Ok(db) = database(&dbs, Some(&p), Purpose::SystemInfo, None) {
                assert!(
                    single(pgt::QUERY_DATABASE, db.name()),
                    "system_info by {set:?}"
                );
            }
        }
    }
    assert!(runs > 1000, "{runs}");
}
