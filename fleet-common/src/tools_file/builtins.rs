//! The server's built-in tools, resources and prompts, by the names
//! `tools.yaml` uses for them, and the `builtins:` switches that turn each
//! one off (pgEdge's form, its `PGEDGE_BUILTIN_*` settings as a file):
//!
//! ```yaml
//! builtins:
//!   tools: {query_database: false}
//!   resources: {system_info: true}
//!   prompts: {design_schema: false}   # or design-schema
//! ```
//!
//! Everything is on unless switched off. A switch naming nothing this server
//! or pgEdge's has is refused: a typo must not leave on a tool the operator
//! meant to turn off.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The one tool a client may call without a credential (a login), and
/// that no permission takes away.
pub const AUTHENTICATE_USER: &str = "authenticate_user";

/// The built-in tools. The server's tool router declares the same names
/// (a test there holds the two lists equal).
pub const TOOLS: &[&str] = &[
    AUTHENTICATE_USER,
    "count_rows",
    "execute_explain",
    "generate_embedding",
    "get_schema_info",
    "query_database",
    "search_knowledgebase",
    "similarity_search",
];

/// The built-in resources (`pg://system_info`).
pub const RESOURCES: &[&str] = &["system_info"];

/// pgEdge's built-in tools that this server does not have: a pgEdge file
/// switching one of them loads unchanged, and the switch does nothing.
const PGEDGE_ONLY_TOOLS: &[&str] = &[
    "list_database_connections",
    "read_resource",
    "select_database_connection",
];

/// Which built-ins are off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    tools_off: BTreeSet<String>,
    resources_off: BTreeSet<String>,
    prompts_off: BTreeSet<String>,
}

impl Switches {
    pub fn tool(&self, name: &str) -> bool {
        !self.tools_off.contains(name)
    }

    pub fn resource(&self, name: &str) -> bool {
        !self.resources_off.contains(name)
    }

    /// `name` as the prompt is listed (`design-schema`).
    pub fn prompt(&self, name: &str) -> bool {
        !self.prompts_off.contains(name)
    }

    /// How many built-ins are off.
    pub fn off(&self) -> usize {
        self.tools_off.len() + self.resources_off.len() + self.prompts_off.len()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSwitches {
    #[serde(default)]
    tools: BTreeMap<String, bool>,
    #[serde(default)]
    resources: BTreeMap<String, bool>,
    #[serde(default)]
    prompts: BTreeMap<String, bool>,
}

/// Check the switches against the built-ins (`prompts`: the built-in
/// prompts' names).
pub(crate) fn switches(raw: RawSwitches, prompts: &[&str]) -> Result<Switches, String> {
    let mut out = Switches::default();
    for (name, on) in raw.tools {
        if !TOOLS.contains(&name.as_str()) && !PGEDGE_ONLY_TOOLS.contains(&name.as_str()) {
            return Err(format!(
                "builtins.tools: no built-in tool is named {name:?} ({})",
                TOOLS.join(", ")
            ));
        }
        if !on {
            out.tools_off.insert(name);
        }
    }
    for (name, on) in raw.resources {
        if !RESOURCES.contains(&name.as_str()) {
            return Err(format!(
                "builtins.resources: no built-in resource is named {name:?} ({})",
                RESOURCES.join(", ")
            ));
        }
        if !on {
            out.resources_off.insert(name);
        }
    }
    for (name, on) in raw.prompts {
        // pgEdge writes the switch with underscores, the prompt with hyphens.
        let listed = name.replace('_', "-");
        if !prompts.contains(&listed.as_str()) {
            return Err(format!(
                "builtins.prompts: no built-in prompt is named {name:?} ({})",
                prompts.join(", ")
            ));
        }
        if !on {
            out.prompts_off.insert(listed);
        }
    }
    Ok(out)
}
