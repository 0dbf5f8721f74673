//! The pure parts of `similarity_search`: operators, bounds, text forms,
//! the statement and its names.

use super::*;

#[test]
fn the_operator_is_the_operator_class_s() {
    for (class, want) in [
        ("vector_l2_ops", Some(Distance::L2)),
        ("vector_ip_ops", Some(Distance::InnerProduct)),
        ("vector_cosine_ops", Some(Distance::Cosine)),
        ("vector_l1_ops", Some(Distance::L1)),
        ("halfvec_cosine_ops", Some(Distance::Cosine)),
        ("halfvec_l2_ops", Some(Distance::L2)),
        ("sparsevec_ip_ops", Some(Distance::InnerProduct)),
        ("sparsevec_l1_ops", Some(Distance::L1)),
        ("vector_ops", None),
        ("int4_ops", None),
        ("bit_hamming_ops", None),
        ("vectorl2_ops", None),
        ("", None),
    ] {
        assert_eq!(Distance::of_opclass(class), want, "{class}");
    }
    let ops: Vec<&str> = [
        Distance::L2,
        Distance::InnerProduct,
        Distance::Cosine,
        Distance::L1,
    ]
    .map(Distance::operator)
    .to_vec();
    assert_eq!(ops, ["<->", "<#>", "<=>", "<+>"]);
}

#[test]
fn distances_are_named_or_given_as_operators() {
    for (json, want) in [
        ("\"cosine\"", Distance::Cosine),
        ("\"<=>\"", Distance::Cosine),
        ("\"l2\"", Distance::L2),
        ("\"<->\"", Distance::L2),
        ("\"euclidean\"", Distance::L2),
        ("\"inner_product\"", Distance::InnerProduct),
        ("\"<#>\"", Distance::InnerProduct),
        ("\"l1\"", Distance::L1),
        ("\"<+>\"", Distance::L1),
    ] {
        assert_eq!(
            serde_json::from_str::<Distance>(json).unwrap(),
            want,
            "{json}"
        );
    }
    assert!(serde_json::from_str::<Distance>("\"<-> 1; DROP TABLE t\"").is_err());
    assert!(serde_json::from_str::<Distance>("\"hamming\"").is_err());
}

#[test]
fn the_index_decides_the_default_distance() {
    let idx = |name: &str, opclass: &str| Index {
        name: name.into(),
        method: "hnsw".into(),
        opclass: opclass.into(),
    };
    let none: [Index; 0] = [];
    assert_eq!(choose_distance(None, &none).0, Distance::Cosine);
    assert!(choose_distance(None, &none).1.is_none());
    let l2 = [idx("a_btree", "vector_ops"), idx("b_l2", "vector_l2_ops")];
    let (d, i) = choose_distance(None, &l2);
    assert_eq!(
        (d, i.map(|i| i.name.as_str())),
        (Distance::L2, Some("b_l2"))
    );
    let (d, i) = choose_distance(Some(Distance::InnerProduct), &l2);
    assert_eq!(d, Distance::InnerProduct);
    assert!(i.is_none(), "no index serves <#>");
}

#[test]
fn the_text_is_required_and_bounded() {
    assert!(check_text("").is_err());
    assert!(check_text(" \n\t").is_err());
    assert_eq!(check_text("  vacuum  ").unwrap(), "vacuum");
    let longest = "a".repeat(MAX_TEXT_BYTES);
    assert!(check_text(&longest).is_ok());
    let e = check_text(&format!("{longest}a")).unwrap_err().to_string();
    assert!(e.contains("8192"), "{e}");
}

#[test]
fn top_n_defaults_to_10_and_is_capped_by_max_rows() {
    assert_eq!(resolve_top_n(None, 1000).unwrap(), (10, false));
    assert_eq!(resolve_top_n(None, 5).unwrap(), (5, false));
    assert_eq!(resolve_top_n(Some(1), 1000).unwrap(), (1, false));
    assert_eq!(resolve_top_n(Some(1000), 1000).unwrap(), (1000, false));
    assert_eq!(resolve_top_n(Some(1001), 1000).unwrap(), (1000, true));
    assert_eq!(resolve_top_n(Some(i64::MAX), 1000).unwrap(), (1000, true));
    assert!(resolve_top_n(Some(0), 1000).is_err());
    assert!(resolve_top_n(Some(-5), 1000).is_err());
}

#[test]
fn vectors_are_written_in_pgvector_s_text_form() {
    assert_eq!(
        vector_literal(&[1.0, -0.5, 0.25], "vector"),
        "[1,-0.5,0.25]"
    );
    assert_eq!(vector_literal(&[0.1], "halfvec"), "[0.1]");
    // The shortest form that reads back as the same f32, no exponent.
    assert_eq!(
        vector_literal(&[1e-10, 0.3], "vector"),
        "[0.0000000001,0.3]"
    );
    let x = 0.123_456_79_f32;
    let text = vector_literal(&[x], "vector");
    let back: f32 = text.trim_matches(['[', ']']).parse().unwrap();
    assert_eq!(back, x);
    assert_eq!(
        vector_literal(&[0.0, 2.0, 0.0, -1.0], "sparsevec"),
        "{2:2,4:-1}/4"
    );
    assert_eq!(vector_literal(&[0.0, 0.0], "sparsevec"), "{}/2");
}

fn args(json: serde_json::Value) -> crate::pg::tools::SimilaritySearchArgs {
    serde_json::from_value(json).unwrap()
}

#[test]
fn arguments_are_checked_before_anything_is_sent() {
    let ok = args(serde_json::json!({"table": " docs ", "text": "x", "filter": " lang = 'en' "}));
    let s = Search::new(&ok, 1000).unwrap();
    assert_eq!(
        (s.table, s.filter, s.top_n),
        ("docs", Some("lang = 'en'"), 10)
    );
    for (json, says) in [
        (
            serde_json::json!({"table": " ", "text": "x"}),
            "table is required",
        ),
        (
            serde_json::json!({"table": "t", "text": "x", "top_n": 0}),
            "top_n must be at least 1",
        ),
        (
            serde_json::json!({"table": "t", "text": "x", "filter": "1=1; DROP TABLE t"}),
            "`;` is not allowed",
        ),
        (
            serde_json::json!({"table": "t", "text": "x", "filter": "nextval('s') > 0"}),
            "nextval",
        ),
        (
            serde_json::json!({"table": "t", "text": "x", "filter": "id = $1"}),
            "parameters",
        ),
        (
            serde_json::json!({"table": "t", "text": "x", "columns": [""]}),
            "empty name",
        ),
    ] {
        let a = args(json.clone());
        let e = Search::new(&a, 1000).unwrap_err().to_string();
        assert!(e.contains(says), "{json}: {e}");
    }
    let many: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
    let a = args(serde_json::json!({"table": "t", "text": "x", "columns": many}));
    assert!(Search::new(&a, 1000).is_err());
    let a = args(serde_json::json!({"table": "t", "text": "x", "columns": ["b", "a", "b"]}));
    assert_eq!(Search::new(&a, 1000).unwrap().columns, Some(vec!["b", "a"]));
}

fn column(name: &str, ty: &str, typmod: i32) -> Column {
    Column {
        name: name.into(),
        ty: ty.into(),
        type_schema: "ext schema".into(),
        typmod,
    }
}

#[test]
fn columns_come_from_the_catalog() {
    let cols = [
        column("id", "int4", -1),
        column("Body", "text", -1),
        column("emb", "vector", 3),
    ];
    assert_eq!(pick_column(&cols, None, "public.t").unwrap().name, "emb");
    assert_eq!(
        pick_column(&cols, Some("emb"), "public.t").unwrap().name,
        "emb"
    );
    let e = pick_column(&cols, Some("body"), "public.t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column \"body\"") && e.contains("emb"), "{e}");
    let e = pick_column(&cols, Some("id"), "public.t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a pgvector type"), "{e}");
    let two = [column("a", "vector", 3), column("b", "halfvec", 3)];
    let e = pick_column(&two, None, "public.t").unwrap_err().to_string();
    assert!(e.contains("several vector columns (a, b)"), "{e}");
    let e = pick_column(&cols[..2], None, "public.t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no vector column"), "{e}");
    assert_eq!(pick_returned(&cols, None, "t").unwrap(), ["id", "Body"]);
    assert_eq!(
        pick_returned(&cols, Some(&["emb", "id"]), "t").unwrap(),
        ["emb", "id"]
    );
    let e = pick_returned(&cols, Some(&["id; DROP TABLE t"]), "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no column"), "{e}");
}

#[test]
fn a_dimension_mismatch_names_both_numbers_and_the_model() {
    let v = [0.5f32; 256];
    let e = Embedding {
        vector: &v,
        model: "wordllama-l2-supercat-256",
        provider: "local",
    };
    assert!(check_dimensions(&column("e", "vector", 256), "public.t", &e).is_ok());
    assert!(check_dimensions(&column("e", "vector", -1), "public.t", &e).is_ok());
    let msg = check_dimensions(&column("e", "vector", 384), "public.t", &e)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("vector(384)")
            && msg.contains("gives 256")
            && msg.contains("wordllama-l2-supercat-256"),
        "{msg}"
    );
}

#[test]
fn the_statement_quotes_every_name_and_binds_the_vector() {
    let col = column("Emb\"x", "halfvec", 3);
    let plan = Plan {
        schema: "My Schema",
        table: "t",
        column: &col,
        select: vec!["id", "distance"],
        distance: Distance::L2,
        alias: distance_alias(&["id", "distance"]),
        filter: Some("id > 1 -- note"),
        top_n: 7,
    };
    let sql = plan.sql();
    assert_eq!(
        sql,
        "WITH __mcp_nearest AS MATERIALIZED (SELECT \"id\", \"distance\", \
         (\"Emb\"\"x\" OPERATOR(\"ext schema\".<->) CAST($1::pg_catalog.text AS \"ext schema\".\"halfvec\")) \
         AS _distance FROM \"My Schema\".\"t\" WHERE \"Emb\"\"x\" IS NOT NULL AND (\nid > 1 -- note\n) \
         ORDER BY \"Emb\"\"x\" OPERATOR(\"ext schema\".<->) CAST($1::pg_catalog.text AS \"ext schema\".\"halfvec\") \
         LIMIT 7) SELECT * FROM __mcp_nearest ORDER BY _distance"
    );
    assert_eq!(distance_alias(&["id"]), "distance");
}

#[test]
fn scan_settings_name_only_pgvector_s_settings() {
    let sql = scan_settings_sql("public", 50);
    assert!(sql.starts_with("SELECT CAST('[0]' AS \"public\".vector) IS NULL; "));
    assert!(sql.contains("GREATEST(s.setting::pg_catalog.int4, 50)"));
}

#[test]
fn pgedge_argument_names_are_taken_too() {
    let args: crate::pg::tools::SimilaritySearchArgs = serde_json::from_value(serde_json::json!({
        "table_name": "docs",
        "query_text": "how do I rotate keys",
        "distance_metric": "l2",
        "chunk_size_tokens": 100,
        "lambda": 0.6,
        "max_output_tokens": 1000
    }))
    .unwrap();
    assert_eq!(args.table, "docs");
    assert_eq!(args.text, "how do I rotate keys");
    assert_eq!(args.distance, Some(Distance::L2));
}
