//! What the server offers beyond its code: the live generation of
//! `tools.yaml` ([`Catalog`]): the operator's curated SQL tools and prompts,
//! the four built-in prompts, and the switches of the built-in tools,
//! resources and prompts.
//!
//! A request takes the current catalog once (it is swapped whole by the
//! reloader, like every store) and meets it through: [`gate`], the one
//! place that decides which tools a caller sees and may call, built-in or
//! curated; [`schema`], the MCP descriptor of a curated tool; [`call`],
//! running one; and [`prompts`], `prompts/list` and `prompts/get`.

pub mod call;
pub mod gate;
pub mod prompts;
pub mod schema;

use std::sync::atomic::{AtomicU64, Ordering};

use fleet_common::tools_file::{Prompt, SqlTool, Switches, ToolsFile};
use rmcp::model::Tool;

/// One generation of `tools.yaml` as the server serves it. Without a file
/// (or before one loads): every built-in on, the built-in prompts, no
/// curated tool.
pub struct Catalog {
    epoch: u64,
    file: ToolsFile,
    /// The MCP descriptor of each of `file.tools`, in the same order.
    descriptors: Vec<Tool>,
    /// The tools (built-in or curated) each prompt's texts name, by prompt
    /// name: [`gate::visible_prompts`] shows a prompt only to a caller who
    /// sees them all.
    prompt_tools: std::collections::HashMap<String, Vec<String>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(ToolsFile::default())
    }
}

impl Catalog {
    pub fn new(file: ToolsFile) -> Catalog {
        // Each catalog has its own number, higher than any before it:
        // answers cached for one (`tools/list`) are never served for another.
        static EPOCHS: AtomicU64 = AtomicU64::new(1);
        let descriptors = file.tools.iter().map(schema::descriptor).collect();
        let tool_names: Vec<&str> = fleet_common::tools_file::builtins::TOOLS
            .iter()
            .copied()
            .chain(file.tools.iter().map(|t| t.name.as_str()))
            .collect();
        let prompt_tools = fleet_common::tools_file::prompts::builtin()
            .iter()
            .chain(&file.prompts)
            .map(|p| (p.name.clone(), p.named_tools(&tool_names)))
            .collect();
        Catalog {
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed),
            file,
            descriptors,
            prompt_tools,
        }
    }

    /// This catalog's number, unique in the process.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn switches(&self) -> &Switches {
        &self.file.builtins
    }

    /// The curated tools, each with its descriptor.
    pub fn tools(&self) -> impl Iterator<Item = (&SqlTool, &Tool)> {
        self.file.tools.iter().zip(&self.descriptors)
    }

    /// The curated tool named `name`.
    pub fn tool(&self, name: &str) -> Option<(&SqlTool, &Tool)> {
        self.tools().find(|(t, _)| t.name == name)
    }

    /// The prompts served: the built-in ones not switched off, then the
    /// operator's.
    pub fn prompts(&self) -> impl Iterator<Item = &Prompt> {
        let builtins = fleet_common::tools_file::prompts::builtin();
        builtins
            .iter()
            .filter(|p| self.file.builtins.prompt(&p.name))
            .chain(&self.file.prompts)
    }

    /// [`Catalog::prompts`], each with the tools its texts name.
    pub fn prompts_with_tools(&self) -> impl Iterator<Item = (&Prompt, &[String])> {
        self.prompts().map(|p| {
            let named = self
                .prompt_tools
                .get(&p.name)
                .map_or(&[][..], Vec::as_slice);
            (p, named)
        })
    }

    /// One line on what is loaded, for `/health` and the log.
    pub fn summary(&self) -> String {
        self.file.summary()
    }
}
