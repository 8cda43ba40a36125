//! The OpenAI extension: `/v1/chat/completions` with `model: "agent:<name>"` runs a turn of
//! an agent and answers with its final message as an ordinary completion.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use freeway_agent::{Event, StopReason};
use freeway_types::{ChatResponse, ContentPart, FinishReason, StreamEvent, Usage};
use serde::Deserialize;
use serde_json::Value;

use super::{CreateBody, MessageContent, agent_error, agents, create, session_in_scope};
use crate::AppState;
use crate::error::{ApiError, Category};
use crate::http::{json_response, parse_json, sse_response, unix_now};
use crate::tenancy::Caller;

/// Whether a chat completions body names an agent (`"model": "agent:…"`): a byte search, so
/// ordinary requests pay nothing more than one scan.
pub fn names_agent(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"agent:").is_some()
}

#[derive(Deserialize)]
struct AgentChat {
    model: String,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    working_directory: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
}

/// The OpenAI extension: `/v1/chat/completions` with `model: "agent:<name>"`. The last user
/// message is the task; `session_id` continues a session (a new one is made otherwise, and
/// its id comes back in `session_id` and `x-freeway-session`); `working_directory` and
/// `tools` (names, or function tools whose names are taken) shape a new session's turn. The
/// final answer is an ordinary completion, streamed if asked.
pub async fn agent_chat(
    state: Arc<AppState>,
    caller: Caller,
    bytes: &[u8],
) -> Result<Option<Response>, ApiError> {
    let wire: AgentChat = parse_json(bytes)?;
    let Some(agent) = wire.model.strip_prefix("agent:") else {
        return Ok(None);
    };
    let agents = agents(&state)?.clone();
    let input = wire
        .messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content").cloned())
        .and_then(|c| serde_json::from_value::<MessageContent>(c).ok())
        .map(MessageContent::text)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid("messages", "an agent needs a user message with the task")
        })?;
    let tools = match wire.tools {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|t| {
                    t.as_str()
                        .or_else(|| t.pointer("/function/name").and_then(Value::as_str))
                        .or_else(|| t.get("name").and_then(Value::as_str))
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "tools",
                                "list tool names (\"read_file\") or function tools with a name",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    caller.require_tools()?;
    agents
        .runtime
        .check_tools(agent, tools.as_deref())
        .map_err(agent_error)?;
    let session = match &wire.session_id {
        Some(id) => {
            let s = session_in_scope(&agents, &caller, id).await?;
            if s.agent != agent {
                return Err(ApiError::invalid(
                    "session_id",
                    format!("session {id} belongs to agent `{}`, not `{agent}`", s.agent),
                ));
            }
            s
        }
        None => {
            create(
                &state,
                &caller,
                CreateBody {
                    agent: Some(agent.to_owned()),
                    model: None,
                    working_directory: wire.working_directory.clone(),
                    title: None,
                },
            )
            .await?
        }
    };
    caller.require_model(&session.model)?;
    let live = agents
        .start(&state, &caller, &session, input, tools)
        .await?;
    let events = live.subscribe();
    let id = freeway_types::random_id("chatcmpl-");
    let created = unix_now();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        headers.insert(crate::http::names::X_FREEWAY_SESSION, v);
    }
    if wire.stream {
        let include_usage = wire
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chat = Box::pin(futures_util::StreamExt::flat_map(events, |event| {
            futures_util::stream::iter(as_stream_events(event).into_iter().map(Ok))
        }));
        let encoder = crate::openai::ChunkEncoder::new(&id, created, &wire.model, include_usage);
        return Ok(Some(sse_response(
            crate::encode::frames(chat, encoder),
            state.keep_alive,
            headers,
        )));
    }
    let events: Vec<Event> = futures_util::StreamExt::collect(events).await;
    let (reason, answer, usage) = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::SessionIdle {
                reason,
                answer,
                usage,
                ..
            } => Some((*reason, answer.clone(), *usage)),
            _ => None,
        })
        .unwrap_or((StopReason::Error, None, Usage::default()));
    if reason == StopReason::Error {
        let message = events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Error { message, .. } => Some(message.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "the agent's turn failed".to_owned());
        return Err(
            ApiError::new(StatusCode::BAD_GATEWAY, Category::Upstream, message)
                .with_code("agent_failed")
                .with_detail("session_id", session.id.clone()),
        );
    }
    let response = ChatResponse {
        id: id.clone(),
        model: wire.model.clone(),
        content: vec![ContentPart::text(
            answer.unwrap_or_else(|| stop_note(reason)),
        )],
        tool_calls: Vec::new(),
        finish_reason: finish_of(reason),
        stop_sequence: None,
        usage,
    };
    let mut body = crate::openai::completion(&id, created, &wire.model, &response);
    body.session_id = Some(&session.id);
    Ok(Some(json_response(body, headers)))
}

/// What a chat client sees of an agent's events: the text as it comes, then the end.
fn as_stream_events(event: Event) -> Vec<StreamEvent> {
    match event {
        Event::MessageDelta { text } => vec![StreamEvent::TextDelta { text }],
        Event::SessionIdle {
            reason,
            answer,
            usage,
            ..
        } => {
            let mut out = Vec::new();
            if answer.is_none() {
                out.push(StreamEvent::TextDelta {
                    text: stop_note(reason),
                });
            }
            out.push(StreamEvent::Usage { usage });
            out.push(StreamEvent::Finish {
                reason: finish_of(reason),
                stop_sequence: None,
            });
            out
        }
        _ => Vec::new(),
    }
}

fn finish_of(reason: StopReason) -> FinishReason {
    match reason {
        StopReason::Completed | StopReason::Aborted | StopReason::Error => FinishReason::Stop,
        StopReason::MaxSteps | StopReason::Budget => FinishReason::Length,
    }
}

/// The answer given when a turn ended without one.
fn stop_note(reason: StopReason) -> String {
    match reason {
        StopReason::Completed => String::new(),
        StopReason::MaxSteps => {
            "[the agent reached its step limit; send another message to continue]".to_owned()
        }
        StopReason::Budget => "[the agent reached its spend limit]".to_owned(),
        StopReason::Aborted => "[the turn was aborted]".to_owned(),
        StopReason::Error => "[the turn failed]".to_owned(),
    }
}
