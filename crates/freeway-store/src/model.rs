//! The records the store keeps, as the rest of freeway sees them.

use serde::{Deserialize, Serialize};

/// What a key may do. Admins manage their own team; the master key manages every team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything a developer may, plus the team's keys, usage and audit log.
    Admin,
    /// Calls models and runs agent tools and exec.
    Developer,
    /// Lists models and reads the team's usage; calls nothing.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn can_call_models(self) -> bool {
        match self {
            Role::Admin | Role::Developer => true,
            Role::Viewer => false,
        }
    }

    /// Agent tools, `/v1/exec`.
    pub fn can_run_tools(self) -> bool {
        self.can_call_models()
    }

    pub fn can_admin(self) -> bool {
        match self {
            Role::Admin => true,
            Role::Developer | Role::Viewer => false,
        }
    }
}

/// The calendar period a budget resets on (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    #[default]
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" | "daily" => Some(Period::Day),
            "month" | "monthly" => Some(Period::Month),
            _ => None,
        }
    }
}

/// Spend and rate caps; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The spend allowed per `budget_period`, in billionths of a USD.
    pub budget_nanos: Option<i64>,
    pub budget_period: Period,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens (in + out) per minute.
    pub tpm: Option<u64>,
    /// What an exhausted budget does: `None` refuses (429 `budget_exceeded`),
    /// `route:<name>` sends the request to that cheaper route instead.
    pub on_exceed: Option<String>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.budget_nanos.is_none() && self.rpm.is_none() && self.tpm.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    /// Models and route aliases the team's keys may call; `None` is all.
    pub models: Option<Vec<String>>,
    /// Agent tools the team's keys may have run; `None` is all.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    pub limits: Limits,
    pub created_at: i64,
}

/// A virtual key as stored: never its secret, only a hash and a short prefix to recognize it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub team_id: String,
    pub name: Option<String>,
    pub role: Role,
    /// The first characters of the secret, e.g. `fw-3kQ9…`.
    pub prefix: String,
    /// Models and route aliases this key may call (within the team's); `None` is all.
    pub models: Option<Vec<String>>,
    /// Agent tools this key may have run (within the team's); `None` is all.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    pub limits: Limits,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now_ms)
    }
}

/// Who a request's key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key: ApiKey,
    pub team: Team,
}

impl Principal {
    /// Whether both the team's and the key's allow lists admit `model`.
    pub fn may_use_model(&self, model: &str) -> bool {
        let admits = |list: &Option<Vec<String>>| {
            list.as_ref()
                .is_none_or(|l| l.iter().any(|m| model_matches(m, model)))
        };
        admits(&self.team.models) && admits(&self.key.models)
    }

    /// Whether both allow lists admit agent tool `tool` (`mcp__github__*` admits a server's).
    pub fn may_use_tool(&self, tool: &str) -> bool {
        let admits = |list: &Option<Vec<String>>| {
            list.as_ref()
                .is_none_or(|l| l.iter().any(|t| model_matches(t, tool)))
        };
        admits(&self.team.tools) && admits(&self.key.tools)
    }
}

/// An allow-list entry admits a model exactly, or a whole provider with `provider/*`, or all with `*`.
fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_intersect() {
        let team = Team {
            id: "t".into(),
            name: "t".into(),
            models: Some(vec!["openai/*".into(), "smart".into()]),
            tools: Some(vec![
                "read_file".into(),
                "grep".into(),
                "mcp__github__*".into(),
            ]),
            limits: Limits::default(),
            created_at: 0,
        };
        let key = ApiKey {
            id: "k".into(),
            team_id: "t".into(),
            name: None,
            role: Role::Developer,
            prefix: "fw-".into(),
            models: Some(vec![
                "openai/gpt-4.1".into(),
                "smart".into(),
                "local/x".into(),
            ]),
            tools: Some(vec!["read_file".into(), "bash".into(), "mcp__*".into()]),
            limits: Limits::default(),
            created_at: 0,
            rotated_at: None,
            expires_at: None,
            revoked_at: None,
        };
        let p = Principal { key, team };
        assert!(p.may_use_model("openai/gpt-4.1"));
        assert!(p.may_use_model("smart"));
        assert!(
            !p.may_use_model("openai/gpt-4o"),
            "the key's list narrows the team's"
        );
        assert!(
            !p.may_use_model("local/x"),
            "the team's list bounds the key's"
        );
        assert!(p.may_use_tool("read_file"));
        assert!(!p.may_use_tool("grep"), "not in the key's list");
        assert!(!p.may_use_tool("bash"), "not in the team's list");
        assert!(p.may_use_tool("mcp__github__get_issue"));
        assert!(
            !p.may_use_tool("mcp__slack__post"),
            "the team allows github's only"
        );
    }

    #[test]
    fn roles_parse_and_grant() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(!Role::Viewer.can_call_models());
        assert!(Role::Developer.can_run_tools() && !Role::Developer.can_admin());
    }
}
