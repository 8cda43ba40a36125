//! The built-in tools, and [`CommandTool`] for those declared in `[[tools]]`.

mod command;
mod edit;
mod exec;
mod files;
mod search;

pub use command::CommandTool;
pub use edit::EditFile;
pub use exec::{Bash, RunCode};
pub use files::{ReadFile, WriteFile};
pub use search::{Glob, Grep, List};

use std::sync::Arc;

use crate::Tool;

/// Every built-in tool: the file tools, `bash` and `run_code`.
pub fn builtin() -> Vec<Arc<dyn Tool>> {
    let mut tools = file_tools();
    tools.push(Arc::new(Bash));
    tools.push(Arc::new(RunCode));
    tools
}

/// The file tools: `read_file`, `write_file`, `edit_file`, `list`, `glob` and `grep`.
pub fn file_tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(ReadFile),
        Arc::new(WriteFile),
        Arc::new(EditFile),
        Arc::new(List),
        Arc::new(Glob),
        Arc::new(Grep),
    ]
}
