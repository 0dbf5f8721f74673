//! `tools.yaml`: curated SQL tools, prompts and the switches of the built-in
//! tools, resources and prompts, published to the fleet like any other data
//! file and hot-reloaded by every instance.
//!
//! ```yaml
//! tools:
//!   orders_by_customer:                  # or a list of entries with `name:`
//!     description: Recent orders of one customer.
//!     database: prod                     # optional (Toolbox: source)
//!     parameters:
//!       - {name: customer, type: string, description: Customer name}
//!       - {name: limit, type: integer, default: 10, minimum: 1, maximum: 100}
//!     statement: SELECT id, total FROM orders WHERE customer = :customer LIMIT :limit
//! prompts:
//!   - name: weekly-report
//!     arguments: [{name: week, required: true}]
//!     template: Summarise orders of week {{week}} using orders_by_customer.
//! builtins:
//!   tools: {query_database: false}
//! ```
//!
//! Each part is checked here, once, for `kb-init`, the sidecar and the
//! server alike: [`tool`] (statements through the guard, placeholders
//! matched with parameters), [`params`] (types, defaults, constraints, and
//! the check of every argument value), [`prompts`] (templates, the built-in
//! prompts) and [`builtins`] (the switches). A file is refused whole if any
//! entry is wrong, if two tools or two prompts share a name, or if one takes
//! the name of a built-in. An empty file is refused too: written by a
//! truncated copy, it would switch back on every built-in that the file
//! switched off; a file with nothing in it on purpose says `tools: []`.
//! Errors name the entry and what is wrong; YAML errors give the line and
//! column, never a value.

pub mod builtins;
pub mod params;
pub mod prompts;
pub mod tool;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::yaml::EntryList;
use crate::{Error, Result};

pub use builtins::Switches;
pub use params::{Param, ParamType, Scalar};
pub use prompts::Prompt;
pub use tool::SqlTool;

const FILE: &str = "tools.yaml";

/// A whole `tools.yaml`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolsFile {
    pub tools: Vec<SqlTool>,
    /// The operator's prompts (the built-in ones are [`prompts::builtin`]).
    pub prompts: Vec<Prompt>,
    pub builtins: Switches,
}

impl ToolsFile {
    /// One line for logs and `/health`: "2 tools (1 writer), 1 prompt, 1
    /// built-in off".
    pub fn summary(&self) -> String {
        let writers = self.tools.iter().filter(|t| t.writer).count();
        let n = |count: usize, what: &str| {
            format!("{count} {what}{}", if count == 1 { "" } else { "s" })
        };
        let mut out = n(self.tools.len(), "tool");
        if writers > 0 {
            out.push_str(&format!(" ({})", n(writers, "writer")));
        }
        out.push_str(&format!(
            ", {}, {} off",
            n(self.prompts.len(), "prompt"),
            n(self.builtins.off(), "built-in")
        ));
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tools: Option<EntryList<tool::RawTool>>,
    #[serde(default)]
    prompts: Option<EntryList<prompts::RawPrompt>>,
    #[serde(default)]
    builtins: Option<builtins::RawSwitches>,
    /// pgEdge's custom resources: refused, with the reason.
    #[serde(default)]
    resources: Option<IgnoredAny>,
    // Google MCP Toolbox wiring that means nothing here (databases are the
    // server's configuration): ignored.
    #[serde(default)]
    sources: Option<IgnoredAny>,
    #[serde(default)]
    toolsets: Option<IgnoredAny>,
    #[serde(default, rename = "authServices")]
    auth_services: Option<IgnoredAny>,
}

/// Parse and check a whole `tools.yaml`.
pub fn parse(bytes: &[u8]) -> Result<ToolsFile> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::parse(FILE, e))?;
    let raw: Option<RawFile> = if text.trim().is_empty() {
        None
    } else {
        crate::yaml::from_str(text).map_err(|message| Error::Parse {
            file: FILE,
            message,
        })?
    };
    let Some(raw) = raw else {
        return Err(Error::invalid(
            FILE,
            "the file is empty: a truncated copy must not switch the built-ins back on; \
             write `tools: []` for a file with nothing in it",
        ));
    };
    let _ = (raw.sources, raw.toolsets, raw.auth_services);
    if raw.resources.is_some() {
        return Err(Error::invalid(
            FILE,
            "resources: custom resources are not served; put their SQL in a tool",
        ));
    }
    let invalid = |m: String| Error::invalid(FILE, m);
    let mut tools: Vec<SqlTool> = Vec::new();
    for entry in raw.tools.map(|t| t.0).unwrap_or_default() {
        let name =
            entry_name("tool", entry.key, entry.value.name(), entry.position).map_err(invalid)?;
        if builtins::TOOLS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "tool {name}: the name of a built-in tool (switch the built-in off under \
                 builtins.tools, and give this one another name)"
            )));
        }
        if tools.iter().any(|t| t.name == name) {
            return Err(invalid(format!("tool {name} is defined twice")));
        }
        tools.push(tool::declare(name, entry.value).map_err(invalid)?);
    }
    let builtin_prompts: Vec<&str> = prompts::builtin().iter().map(|p| p.name.as_str()).collect();
    let mut custom: Vec<Prompt> = Vec::new();
    for entry in raw.prompts.map(|p| p.0).unwrap_or_default() {
        let name =
            entry_name("prompt", entry.key, entry.value.name(), entry.position).map_err(invalid)?;
        if builtin_prompts.contains(&name.as_str()) {
            return Err(invalid(format!(
                "prompt {name}: the name of a built-in prompt (switch the built-in off under \
                 builtins.prompts, and give this one another name)"
            )));
        }
        if custom.iter().any(|p| p.name == name) {
            return Err(invalid(format!("prompt {name} is defined twice")));
        }
        custom.push(prompts::declare(name, entry.value).map_err(invalid)?);
    }
    let builtins =
        builtins::switches(raw.builtins.unwrap_or_default(), &builtin_prompts).map_err(invalid)?;
    Ok(ToolsFile {
        tools,
        prompts: custom,
        builtins,
    })
}

/// An entry's name: its map key, or its `name:` in a list (both, if given,
/// must agree).
fn entry_name(
    what: &str,
    key: Option<String>,
    field: Option<&str>,
    position: usize,
) -> std::result::Result<String, String> {
    match (key, field) {
        (Some(k), Some(f)) if k != f => Err(format!(
            "{what} {k}: its name field says {f:?}; the key is the name"
        )),
        (Some(k), _) => Ok(k),
        (None, Some(f)) => Ok(f.to_string()),
        (None, None) => Err(format!("{what} {position} has no name")),
    }
}

/// Tool and prompt names: what MCP clients accept.
pub(crate) fn valid_entry_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests;
