use super::*;

fn list(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

#[test]
fn absent_and_wildcard_allow_everything_and_an_empty_list_nothing() {
    let all = Permissions::from_lists(None, list(&["*"]));
    assert!(all.is_unrestricted());
    assert!(all.allows("query_database", "prod"));
    let kb = Permissions::from_lists(list(&["search_knowledgebase"]), list(&[]));
    assert!(kb.allows_tool("search_knowledgebase"));
    assert!(!kb.allows_tool("query_database"));
    assert!(!kb.allows("search_knowledgebase", "prod"));
    assert_eq!(
        kb.databases_for("search_knowledgebase"),
        Some(BTreeSet::new())
    );
    let nothing = Permissions::from_lists(list(&[]), None);
    assert_eq!(nothing, Permissions::none());
    assert_eq!(nothing.describe(), "none");
}

/// The escalation of the adversarial test (issue 29, finding 1), with the
/// grants of docs/configuration.md: a token that carries scope `kb` and the
/// Analyst role may search, and run the Analyst's tools on `analytics`
/// only; before, the union of the two grants field by field gave it
/// `query_database` on every database.
#[test]
fn two_grants_never_combine_into_a_pair_neither_allows() {
    let kb = Permissions::from_lists(list(&["search_knowledgebase"]), None);
    let analyst = Permissions::from_lists(
        list(&["query_database", "get_schema_info", "count_rows"]),
        list(&["analytics"]),
    );
    let both = kb.union(&analyst);
    assert!(both.allows_tool("search_knowledgebase"));
    assert!(both.allows("query_database", "analytics"));
    assert!(!both.allows("query_database", "prod"), "{both:?}");
    assert_eq!(
        both.databases_for("query_database"),
        Some(BTreeSet::from(["analytics".to_string()]))
    );
    assert!(!both.allows_tool("execute_explain"));
    assert_eq!(
        both.describe(),
        "tools=search_knowledgebase databases=all; \
         tools=count_rows,get_schema_info,query_database databases=analytics"
    );
    // The Keycloak example's everyone-grant: the same.
    let everyone = Permissions::from_lists(list(&["search_knowledgebase"]), None);
    assert!(!everyone.union(&analyst).allows("query_database", "prod"));
}

#[test]
fn unions_are_canonical_and_fingerprints_tell_permissions_apart() {
    let a = Permissions::from_lists(list(&["a"]), list(&["x"]));
    let b = Permissions::from_lists(list(&["b"]), None);
    let u = a.union(&b);
    assert!(u.allows("a", "x") && !u.allows("a", "y") && u.allows("b", "anything"));
    assert!(!u.allows_tool("c"));
    assert_eq!(Permissions::none().union(&a), a);
    assert_eq!(a.union(&b), b.union(&a));
    assert_eq!(a.union(&a), a);
    // A grant inside another adds nothing.
    let wider = Permissions::from_lists(list(&["a", "b"]), list(&["x", "y"]));
    assert_eq!(a.union(&wider), wider);
    assert!(Permissions::everything().fingerprint().is_empty());
    assert!(a.union(&Permissions::everything()).is_unrestricted());
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), u.fingerprint());
    // Not the same pairs as one grant of both tools on both databases.
    let product = Permissions::from_lists(list(&["a", "b"]), None);
    assert_ne!(u, product);
    assert_ne!(u.fingerprint(), product.fingerprint());
    // A name cannot pose as two: "a\0b" is not ["a", "b"].
    let ab = Permissions::from_lists(list(&["a", "b"]), None);
    let joined = Permissions::from_lists(list(&["a\0b"]), None);
    assert_ne!(ab.fingerprint(), joined.fingerprint());
}

#[test]
fn unrestricted_values_share_one_arc_and_describe_themselves() {
    let a = Permissions::from_lists(None, None).shared();
    let b = Permissions::from_lists(list(&["*"]), None).shared();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.describe(), "all");
    let kb = Permissions::from_lists(list(&["b", "a"]), list(&[])).shared();
    assert!(!Arc::ptr_eq(&a, &kb));
    assert_eq!(kb.describe(), "tools=a,b databases=none");
    let db = Permissions::from_lists(None, list(&["prod"]));
    assert_eq!(db.describe(), "tools=all databases=prod");
}

/// Every grant over a small universe: each list absent, `*`, or any subset
/// of its names.
fn every_grant(tools: &[&str], dbs: &[&str]) -> Vec<Grant> {
    fn lists(names: &[&str]) -> Vec<Option<Vec<String>>> {
        let mut out = vec![None, list(&["*"])];
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
    for t in lists(tools) {
        for d in lists(dbs) {
            out.push(Grant::from_lists(t.clone(), d));
        }
    }
    out
}

/// The merge of any grants allows exactly the pairs and tools that one of
/// them allows: checked for every set of up to three grants over three
/// tools and two databases (and names in none of them), and that the
/// databases a tool may use are the ones it is allowed on.
#[test]
fn a_merge_never_allows_a_pair_no_single_grant_allows() {
    const TOOLS: [&str; 3] = ["a", "b", "c"];
    const DBS: [&str; 2] = ["x", "y"];
    let grants = every_grant(&TOOLS, &DBS);
    let probe_tools = ["a", "b", "c", "other-tool"];
    let probe_dbs = ["x", "y", "other-db"];
    let check = |set: &[&Grant]| {
        let merged = Permissions::from_grants(set.iter().copied());
        // Merging one by one gives the same value.
        let folded = set.iter().fold(Permissions::none(), |acc, g| {
            acc.union(&Permissions::from_grant(g))
        });
        assert_eq!(merged, folded, "{set:?}");
        for t in probe_tools {
            let single = set.iter().any(|g| g.allows_tool(t));
            assert_eq!(merged.allows_tool(t), single, "{t} by {set:?}");
            let dbs = merged.databases_for(t);
            for d in probe_dbs {
                let single = set.iter().any(|g| g.allows(t, d));
                assert_eq!(merged.allows(t, d), single, "({t}, {d}) by {set:?}");
                let listed = dbs.as_ref().is_none_or(|s| s.contains(d));
                assert_eq!(listed, single, "databases_for({t}) ∋ {d} by {set:?}");
            }
        }
        assert_eq!(
            merged.is_unrestricted(),
            set.iter()
                .any(|g| g.tools.is_none() && g.databases.is_none()),
            "{set:?}"
        );
    };
    let mut checked = 0usize;
    for (i, g1) in grants.iter().enumerate() {
        check(&[g1]);
        for (j, g2) in grants.iter().enumerate().skip(i) {
            check(&[g1, g2]);
            // Triples over a stride: every grant appears in many of them.
            for g3 in grants.iter().skip(j).step_by(5) {
                check(&[g1, g2, g3]);
                checked += 1;
            }
        }
    }
    assert!(checked > 8_000, "{checked}");
}

/// Permissions that allow the same pairs and tools are equal, whatever the
/// grants they were written as: the replay cache keys answers by the
/// fingerprint, so two equal credentials share a list and two different
/// ones never do.
#[test]
fn equal_pairs_give_equal_fingerprints() {
    let grants = every_grant(&["a", "b"], &["x"]);
    let pairs = |p: &Permissions| -> Vec<bool> {
        let mut out = Vec::new();
        for t in ["a", "b", "z"] {
            out.push(p.allows_tool(t));
            for d in ["x", "w"] {
                out.push(p.allows(t, d));
            }
        }
        out
    };
    let mut all = Vec::new();
    for g1 in &grants {
        for g2 in &grants {
            all.push(Permissions::from_grants([g1, g2]));
        }
    }
    for p in &all {
        for q in &all {
            assert_eq!(
                pairs(p) == pairs(q),
                p.fingerprint() == q.fingerprint(),
                "{p:?} / {q:?}"
            );
        }
    }
}
