//! The parser and validator of `tools.yaml`, on whole files.

use super::*;
use serde_json::json;

fn ok(yaml: &str) -> ToolsFile {
    parse(yaml.as_bytes()).unwrap_or_else(|e| panic!("refused: {e}\n{yaml}"))
}

fn refused(yaml: &str) -> String {
    match parse(yaml.as_bytes()) {
        Ok(f) => panic!("accepted: {f:?}\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn our_form_with_every_parameter_type() {
    let f = ok(r#"
tools:
  find_orders:
    description: Orders of one customer.
    database: main
    parameters:
      - {name: customer, type: string, description: Customer name}
      - {name: min_total, type: number, minimum: 0}
      - {name: limit, type: integer, default: 10, minimum: 1, maximum: 100}
      - {name: paid, type: boolean, required: false}
      - {name: ids, type: array, items: {type: integer}, required: false}
      - {name: states, type: array, items: {type: string, enum: [open, closed]}, default: [open]}
    statement: |
      SELECT id, total FROM orders
      WHERE customer = :customer AND total >= :min_total
        AND (:paid::boolean IS NULL OR paid = :paid)
        AND (:ids::bigint[] IS NULL OR id = ANY(:ids))
        AND state = ANY(:states)
      LIMIT :limit;
  add_note:
    description: Add a note to an order.
    writer: true
    parameters:
      - {name: order_id, type: integer}
      - {name: note, type: string}
    statement: INSERT INTO notes (order_id, note) VALUES ($1, $2) RETURNING id
prompts:
  - name: weekly-report
    description: A weekly summary.
    arguments: [{name: week, required: true}]
    template: Summarise week {{week}}.
builtins:
  tools: {query_database: false}
  prompts: {design_schema: false}
"#);
    assert_eq!(f.summary(), "2 tools (1 writer), 1 prompt, 2 built-ins off");
    let t = &f.tools[0];
    assert_eq!(t.name, "find_orders");
    assert_eq!(t.database.as_deref(), Some("main"));
    assert!(!t.writer);
    assert_eq!(
        t.sql,
        "SELECT id, total FROM orders\nWHERE customer = $1 AND total >= $2\n  AND ($4::boolean IS NULL OR paid = $4)\n  AND ($5::bigint[] IS NULL OR id = ANY($5))\n  AND state = ANY($6)\nLIMIT $3"
    );
    let types: Vec<ParamType> = t.params.iter().map(|p| p.ty).collect();
    assert_eq!(
        types,
        [
            ParamType::Scalar(Scalar::String),
            ParamType::Scalar(Scalar::Number),
            ParamType::Scalar(Scalar::Integer),
            ParamType::Scalar(Scalar::Boolean),
            ParamType::Array(Scalar::Integer),
            ParamType::Array(Scalar::String),
        ]
    );
    assert!(t.params[0].required && !t.params[2].required && !t.params[3].required);
    assert_eq!(t.params[5].default, Some(json!(["open"])));
    assert!(f.tools[1].writer);
    assert!(!f.builtins.tool("query_database") && f.builtins.tool("count_rows"));
    assert!(!f.builtins.prompt("design-schema") && f.builtins.prompt("explore-database"));
    assert!(f.builtins.resource("system_info"));
}

#[test]
fn google_toolbox_form_loads() {
    let f = ok(r#"
sources:
  my-pg-source: {kind: postgres, host: 127.0.0.1, database: toolbox_db}
tools:
  search-hotels-by-name:
    kind: postgres-sql
    source: main
    description: Search for hotels based on name.
    parameters:
      - name: name
        type: string
        description: The name of the hotel.
      - name: stars
        type: float
        description: Least stars
        minValue: 1
        maxValue: 5
      - name: chains
        type: array
        description: Hotel chains.
        items: {name: chain, type: string, description: A chain, allowedValues: [hilton, hyatt]}
    statement: SELECT * FROM hotels WHERE name ILIKE '%' || $1 || '%' AND stars >= $2 AND chain = ANY($3);
toolsets:
  my-toolset: [search-hotels-by-name]
"#);
    let t = &f.tools[0];
    assert_eq!(t.database.as_deref(), Some("main"));
    assert!(
        t.params.iter().all(|p| p.required),
        "Toolbox: required by default"
    );
    assert_eq!(t.params[1].ty, ParamType::Scalar(Scalar::Number));
    assert!(t.params[2].accept(Some(&json!(["marriott"]))).is_err());
    assert!(t.sql.ends_with("ANY($3)"));
}

#[test]
fn pgedge_form_loads() {
    let f = ok(r#"
tools:
  - name: top_customers
    description: The customers with the most orders.
    type: sql
    input_schema:
      type: object
      properties:
        limit: {type: integer, description: How many, default: 5}
        region: {type: string, enum: [eu, us]}
      required: [region]
    sql: SELECT customer FROM orders WHERE region = $2 GROUP BY 1 ORDER BY count(*) DESC LIMIT $1
prompts:
  - name: analyze-table
    description: Analyzes a table
    arguments:
      - {name: table_name, description: The table, required: true}
    messages:
      - role: user
        content:
          type: text
          text: Analyze {{table_name}} with get_schema_info(table_name="{{table_name}}").
builtins:
  tools: {similarity_search: false, list_database_connections: false}
  resources: {system_info: false}
  prompts: {explore_database: true}
"#);
    let t = &f.tools[0];
    assert_eq!(t.params[0].name, "limit");
    assert!(!t.params[0].required && t.params[1].required);
    assert_eq!(f.prompts[0].arguments[0].name, "table_name");
    assert!(!f.builtins.resource("system_info"));
    assert!(!f.builtins.tool("similarity_search"));
    assert_eq!(
        f.builtins.off(),
        3,
        "switches of pgEdge-only tools are accepted"
    );
}

#[test]
fn invalid_files_are_refused_with_the_reason() {
    let tool = |extra: &str| format!("tools:\n  t:\n    description: d\n{extra}");
    for (yaml, says) in [
        // unknown parameter type
        (tool("    parameters: [{name: a, type: text}]\n    statement: SELECT :a\n"), "tool t: parameter a: unknown type \"text\""),
        (tool("    parameters: [{name: a, type: array, items: {type: date}}]\n    statement: SELECT :a\n"), "unknown type \"date\""),
        // SQL that does not parse
        (tool("    statement: SELECT 'unterminated\n"), "tool t: statement: unterminated string literal"),
        (tool("    statement: SELECT (1\n"), "unbalanced parentheses"),
        (tool("    statement: SELECT 1; SELECT 2\n"), "only one statement"),
        (tool("    statement: 'SELECT 1 : 2'\n"), "neither a cast"),
        (tool("    statement: SELEC 1\n"), "statements starting with SELEC are not allowed"),
        (tool("    statement: '  -- nothing'\n"), "the query is empty"),
        // placeholders and parameters that do not match
        (tool("    parameters: [{name: a, type: string}]\n    statement: SELECT :b\n"), ":b at line 1 column 8 names no declared parameter"),
        (tool("    parameters: [{name: a, type: string}]\n    statement: SELECT 1\n"), "parameter a is declared but the statement never uses it"),
        (tool("    statement: SELECT $1\n"), "$1 at line 1 column 8 refers to no parameter"),
        (tool("    parameters: [{name: a, type: string}, {name: a, type: string}]\n    statement: SELECT :a\n"), "parameter a is declared twice"),
        // writes and escapes
        (tool("    statement: DELETE FROM t\n"), "a tool that writes must say `writer: true`"),
        (tool("    statement: WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d\n"), "must say `writer: true`"),
        (tool("    writer: true\n    statement: DELETE FROM t; COMMIT\n"), "only one statement"),
        (tool("    writer: true\n    statement: DROP TABLE t\n"), "DROP statements are not allowed"),
        (tool("    statement: SET ROLE postgres\n"), "changing the role"),
        (tool("    statement: SELECT nextval('s')\n"), "nextval() is not allowed"),
        (tool("    statement: DO $$ BEGIN END $$\n"), "DO is not allowed"),
        // forms that cannot be served safely
        (tool("    type: pl-do\n    language: plpgsql\n    code: BEGIN END\n"), "type pl-do is not served"),
        (tool("    templateParameters: [{name: t, type: string}]\n    statement: SELECT 1\n"), "spliced into the SQL text"),
        (tool("    statement: SELECT 1\n    unknown_field: 1\n"), "unknown field `unknown_field`"),
        (tool("    parameters: [{name: a, type: string, required: true, default: x}]\n    statement: SELECT :a\n"), "a parameter with a default is not required"),
        ("tools:\n  t:\n    statement: SELECT 1\n".to_string(), "tool t: needs a description"),
        // duplicate names, and names of built-ins
        ("tools:\n  - {name: a, description: d, statement: SELECT 1}\n  - {name: a, description: d, statement: SELECT 2}\n".to_string(), "tool a is defined twice"),
        ("tools:\n  query_database: {description: d, statement: SELECT 1}\n".to_string(), "tool query_database: the name of a built-in tool"),
        ("prompts:\n  - {name: p, template: x}\n  - {name: p, template: y}\n".to_string(), "prompt p is defined twice"),
        ("prompts:\n  - {name: explore-database, template: x}\n".to_string(), "the name of a built-in prompt"),
        ("builtins:\n  tools: {query_databse: false}\n".to_string(), "no built-in tool is named \"query_databse\""),
        ("builtins:\n  prompts: {explore: false}\n".to_string(), "no built-in prompt is named"),
        // the file as a whole
        ("".to_string(), "the file is empty"),
        ("# only comments\n".to_string(), "the file is empty"),
        ("resources: []\n".to_string(), "custom resources are not served"),
        ("tool: []\n".to_string(), "unknown field `tool`"),
        ("tools: [1\n".to_string(), "tools.yaml: line "),
    ] {
        let e = refused(&yaml);
        assert!(e.starts_with("tools.yaml: "), "{e}");
        assert!(e.contains(says), "expected {says:?} in: {e}\n{yaml}");
    }
    // Explicitly nothing.
    assert_eq!(ok("tools: []\n"), ToolsFile::default());
    assert_eq!(ok("{}\n"), ToolsFile::default());
}

#[test]
fn yaml_errors_never_quote_a_value() {
    let e = refused(
        "tools:\n  t:\n    description: d\n    writer: SECRET-VALUE\n    statement: SELECT 1\n",
    );
    assert!(!e.contains("SECRET"), "{e}");
}

/// The `yaml` blocks of a Markdown document that follow `heading`, up to the
/// next heading of the same level.
fn examples(doc: &str, heading: &str) -> Vec<String> {
    let level = heading.split(' ').next().unwrap_or("#");
    let section: Vec<&str> = doc
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !(l.starts_with(level) && l.as_bytes().get(level.len()) == Some(&b' ')))
        .collect();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in section {
        match (&mut block, line) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(b), "```") => {
                out.push(std::mem::take(b));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_documented_examples_are_valid_files() {
    let readme = examples(
        include_str!("../../../README.md"),
        "### Curated tools and prompts: tools.yaml",
    );
    let formats = examples(
        include_str!("../../../docs/file-formats.md"),
        "## tools.yaml",
    );
    assert_eq!((readme.len(), formats.len()), (1, 2));
    for example in readme.iter().chain(&formats) {
        let f = ok(example);
        assert!(!f.tools.is_empty(), "{example}");
    }
    assert_eq!(
        ok(&readme[0]).summary(),
        "2 tools (1 writer), 1 prompt, 2 built-ins off"
    );
}
