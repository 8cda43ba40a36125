//! `[[agents]]`: each agent's model, sandbox level, approval mode and limits.

use std::collections::HashSet;

use crate::raw::RawAgent;
use crate::runtime::{AgentConfig, Approval, SandboxLevel};

use super::Cx;

impl Cx<'_> {
    pub(super) fn agent(
        &mut self,
        a: &RawAgent,
        default_model: Option<&str>,
        providers: &[&str],
        routes: &HashSet<String>,
        names: &mut HashSet<String>,
    ) -> Option<AgentConfig> {
        let name = a.name.get_ref().clone();
        let key = |field: &str| format!("agents.{name}.{field}");
        if !names.insert(name.clone()) {
            self.error(
                a.name.span(),
                key("name"),
                format!("an agent named `{name}` is already defined"),
            );
            return None;
        }
        let model = match &a.model {
            Some(m) => {
                self.model_ref(m, &key("model"), providers, routes);
                m.get_ref().clone()
            }
            None => match default_model {
                Some(m) => m.to_owned(),
                None => {
                    self.error(
                        a.name.span(),
                        key("model"),
                        "missing, and there is no default_model to fall back on",
                    );
                    return None;
                }
            },
        };
        let sandbox = match a.sandbox.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("workspace-write", _)) => SandboxLevel::WorkspaceWrite,
            Some(("read-only", _)) => SandboxLevel::ReadOnly,
            Some(("full-access", _)) => SandboxLevel::FullAccess,
            Some((other, span)) => {
                self.error(span, key("sandbox"), format!("unknown sandbox `{other}`; expected read-only, workspace-write or full-access"));
                return None;
            }
        };
        let approval = match a
            .approval
            .as_ref()
            .map(|s| (s.get_ref().as_str(), s.span()))
        {
            None | Some(("full-auto", _)) => Approval::FullAuto,
            Some(("suggest", _)) => Approval::Suggest,
            Some(("auto-edit", _)) => Approval::AutoEdit,
            Some((other, span)) => {
                self.error(
                    span,
                    key("approval"),
                    format!("unknown approval `{other}`; expected suggest, auto-edit or full-auto"),
                );
                return None;
            }
        };
        let max_spend_usd = a.max_spend_usd.as_ref().map(|m| *m.get_ref());
        if let Some(m) = &a.max_spend_usd
            && !(m.get_ref().is_finite() && *m.get_ref() > 0.0)
        {
            self.error(
                m.span(),
                key("max_spend_usd"),
                "must be a positive number of US dollars",
            );
            return None;
        }
        if let Some(c) = &a.context_window
            && *c.get_ref() < 512
        {
            self.error(
                c.span(),
                key("context_window"),
                "must be at least 512 tokens",
            );
            return None;
        }
        Some(AgentConfig {
            name,
            model,
            system_prompt: a.system_prompt.as_ref().map(|s| s.get_ref().clone()),
            tools: a
                .tools
                .as_ref()
                .map(|t| t.get_ref().iter().map(|s| s.get_ref().clone()).collect())
                .unwrap_or_default(),
            sandbox,
            approval,
            max_steps: a.max_steps.as_ref().map_or(50, |m| *m.get_ref()),
            max_spend_usd,
            context_window: a.context_window.as_ref().map(|c| *c.get_ref()),
            mcp_servers: a
                .mcp_servers
                .as_ref()
                .map(|t| t.get_ref().iter().map(|s| s.get_ref().clone()).collect())
                .unwrap_or_default(),
        })
    }
}
