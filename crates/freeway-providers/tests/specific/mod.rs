//! Cases that exist for one protocol only, and replays of the recorded fixtures.

use freeway_providers::openai::{OpenAiProvider, Preset};
use freeway_providers::{Auth, Secret};
use freeway_testkit::{Answer, MockUpstream, Protocol, Reply, SseScript, fixture};
use freeway_types::{
    ChatRequest, ErrorKind, FinishReason, Message, Provider, ResponseFormat, StreamAccumulator,
    ToolChoice, Usage,
};
use serde_json::json;

use crate::support::{self, Harness, KEY, MODEL, drain, json_of, text_of};

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        model: MODEL.to_owned(),
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

fn json_reply(protocol: Protocol, name: &str) -> Reply {
    Reply::raw(200, "application/json", fixture(protocol, name).unwrap())
}

fn sse_reply(protocol: Protocol, name: &str) -> Reply {
    Reply::sse(SseScript::from_recording(&fixture(protocol, name).unwrap()))
}

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": false
    })
}

fn json_schema_request() -> ChatRequest {
    let mut req = request("Answer in JSON");
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "reply".to_owned(),
        schema: schema(),
        strict: Some(true),
    });
    req
}

mod openai {
    use super::*;

    #[tokio::test]
    async fn stream_asks_for_usage_and_reads_the_usage_only_chunk() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(sse_reply(Protocol::OpenAi, "stream_text.sse"));
        let provider = support::OpenAi::provider(&mock);
        let (events, error) = drain(provider.stream(&request("Hi")).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(text_of(&events), "Hello! How can I help, é?");
        let r = StreamAccumulator::collect(
            Box::pin(futures_util::stream::iter(events.into_iter().map(Ok))),
            MODEL,
        )
        .await
        .unwrap();
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 9,
                output_tokens: 12,
                cache_read_tokens: 4,
                cache_write_tokens: 0
            }
        );
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(
            mock.last_request().unwrap().json()["stream_options"],
            json!({"include_usage": true})
        );
    }

    #[tokio::test]
    async fn recorded_completion_and_tool_calls() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(json_reply(Protocol::OpenAi, "chat.json"));
        mock.push(json_reply(Protocol::OpenAi, "chat_tool_calls.json"));
        let provider = support::OpenAi::provider(&mock);
        let r = provider.complete(&request("Hi")).await.unwrap();
        assert_eq!(r.text(), "Hello! How can I assist you today?");
        assert_eq!(r.id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
        assert_eq!(r.usage.input_tokens, 19);
        let r = provider.complete(&request("Weather?")).await.unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls[0].id, "call_abc123");
        assert_eq!(
            json_of(&r.tool_calls[0].arguments),
            json!({"location": "Boston, MA"})
        );
    }

    #[tokio::test]
    async fn recorded_parallel_tool_calls_with_interleaved_fragments() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(sse_reply(
            Protocol::OpenAi,
            "stream_parallel_tool_calls.sse",
        ));
        let provider = support::OpenAi::provider(&mock);
        let r = StreamAccumulator::collect(provider.stream(&request("both")).await.unwrap(), MODEL)
            .await
            .unwrap();
        assert_eq!(r.tool_calls[0].id, "call_paris");
        assert_eq!(
            json_of(&r.tool_calls[0].arguments),
            json!({"location": "Paris"})
        );
        assert_eq!(r.tool_calls[1].id, "call_tokyo");
        assert_eq!(
            json_of(&r.tool_calls[1].arguments),
            json!({"tz": "Asia/Tokyo"})
        );
    }

    #[tokio::test]
    async fn recorded_midstream_error_chunk_then_done_is_not_a_success() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        let recorded = fixture(Protocol::OpenAi, "stream_error.sse").unwrap();
        mock.push(Reply::sse(SseScript::from_recording(&recorded).done()));
        let provider = support::OpenAi::provider(&mock);
        let (events, error) = drain(provider.stream(&request("Hi")).await.unwrap()).await;
        assert_eq!(text_of(&events), "Partial");
        assert_eq!(
            error.expect("the error chunk must fail the stream").kind(),
            ErrorKind::Upstream
        );
    }

    #[tokio::test]
    async fn response_format_json_schema() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(support::OpenAi::complete_reply(&Answer::text(
            "{\"answer\":\"42\"}",
        )));
        let provider = support::OpenAi::provider(&mock);
        provider.complete(&json_schema_request()).await.unwrap();
        assert_eq!(
            mock.last_request().unwrap().json()["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema(), "strict": true}})
        );
    }

    #[tokio::test]
    async fn recorded_embeddings_are_put_in_input_order() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(json_reply(Protocol::OpenAi, "embeddings.json"));
        let provider = support::OpenAi::provider(&mock);
        let r = provider
            .embed(&freeway_types::EmbeddingRequest {
                model: "text-embedding-3-small".into(),
                input: freeway_types::EmbeddingInput::Text(vec!["a".into(), "b".into()]),
                dimensions: Some(3),
                user: None,
            })
            .await
            .unwrap();
        assert_eq!(
            r.embeddings[0],
            vec![0.0023064255, -0.009327292, -0.0028842222]
        );
        assert_eq!(r.embeddings[1], vec![0.5, -0.25, 0.125]);
        assert_eq!(r.usage.input_tokens, 8);
        let req = mock.last_request().unwrap();
        assert_eq!(req.path, "/v1/embeddings");
        assert_eq!(
            req.json(),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 3})
        );
    }

    #[tokio::test]
    async fn recorded_context_length_error() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(Reply::raw(
            400,
            "application/json",
            fixture(Protocol::OpenAi, "error_context_length.json").unwrap(),
        ));
        let e = support::OpenAi::provider(&mock)
            .complete(&request("long"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);
    }

    fn preset_provider(mock: &MockUpstream, preset: Preset) -> OpenAiProvider {
        let s = support::settings(
            mock.base_url(),
            Auth::Bearer(Secret::new(KEY)),
            support::test_timeouts(),
        );
        OpenAiProvider::new(&s, preset.quirks()).unwrap()
    }

    fn quirky_request() -> ChatRequest {
        let mut req = request("Hi");
        req.max_tokens = Some(50);
        req.seed = Some(7);
        req.tool_choice = Some(ToolChoice::Required);
        req.tools = vec![freeway_types::ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}}),
            strict: None,
        }];
        req
    }

    #[tokio::test]
    async fn openai_preset_sends_max_completion_tokens() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(support::OpenAi::complete_reply(&Answer::text("ok")));
        preset_provider(&mock, Preset::OpenAi)
            .complete(&quirky_request())
            .await
            .unwrap();
        let body = mock.last_request().unwrap().json();
        assert_eq!(body["max_completion_tokens"], 50);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["seed"], 7);
        assert_eq!(body["tool_choice"], "required");
    }

    #[tokio::test]
    async fn mistral_preset_sends_random_seed_and_any() {
        let mock = MockUpstream::start(Protocol::OpenAi).await.unwrap();
        mock.push(support::OpenAi::stream_reply(&Answer::text("ok then")));
        let provider = preset_provider(&mock, Preset::Mistral);
        StreamAccumulator::collect(provider.stream(&quirky_request()).await.unwrap(), MODEL)
            .await
            .unwrap();
        let body = mock.last_request().unwrap().json();
        assert_eq!(body["random_seed"], 7);
        assert!(body.get("seed").is_none());
        assert_eq!(body["tool_choice"], "any");
        assert_eq!(body["max_tokens"], 50);
        assert!(
            body.get("stream_options").is_none(),
            "Mistral rejects stream_options"
        );
    }
}

mod anthropic {
    use super::*;
    use crate::support::test_timeouts;

    #[tokio::test]
    async fn a_base_url_ending_in_v1_still_reaches_v1_messages() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(json_reply(Protocol::Anthropic, "message.json"));
        let provider =
            support::Anthropic::provider_with(format!("{}/v1/", mock.base_url()), test_timeouts());
        provider.complete(&request("Hi")).await.unwrap();
        assert_eq!(mock.last_request().unwrap().path, "/v1/messages");
    }

    #[tokio::test]
    async fn recorded_message_counts_cache_tokens_in_input() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(json_reply(Protocol::Anthropic, "message.json"));
        let r = support::Anthropic::provider(&mock)
            .complete(&request("Hi"))
            .await
            .unwrap();
        assert_eq!(r.text(), "Hi! My name is Claude.");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 2095 + 100 + 1800,
                output_tokens: 503,
                cache_read_tokens: 1800,
                cache_write_tokens: 100
            }
        );
    }

    #[tokio::test]
    async fn recorded_stream_with_text_and_two_tools() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(sse_reply(Protocol::Anthropic, "stream_tool_use.sse"));
        mock.push(json_reply(Protocol::Anthropic, "message_tool_use.json"));
        let provider = support::Anthropic::provider(&mock);
        let r = StreamAccumulator::collect(provider.stream(&request("w")).await.unwrap(), MODEL)
            .await
            .unwrap();
        assert_eq!(r.text(), "Okay, let me check.");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        assert_eq!(
            json_of(&r.tool_calls[0].arguments),
            json!({"location": "San Francisco, CA"})
        );
        assert_eq!(json_of(&r.tool_calls[1].arguments), json!({"tz": "PST"}));
        assert_eq!(r.usage.input_tokens, 472);
        assert_eq!(r.usage.output_tokens, 89);
        let whole = provider.complete(&request("w")).await.unwrap();
        assert_eq!(
            json_of(&whole.tool_calls[0].arguments),
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
    }

    #[tokio::test]
    async fn recorded_text_stream_with_ping_and_cache_read() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(sse_reply(Protocol::Anthropic, "stream_text.sse"));
        let r = StreamAccumulator::collect(
            support::Anthropic::provider(&mock)
                .stream(&request("Hi"))
                .await
                .unwrap(),
            MODEL,
        )
        .await
        .unwrap();
        assert_eq!(r.text(), "Hello! Ça va?");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 35,
                output_tokens: 15,
                cache_read_tokens: 10,
                cache_write_tokens: 0
            }
        );
    }

    #[tokio::test]
    async fn tool_without_arguments_streams_as_an_empty_object() {
        // Anthropic streams a tool that takes no input as a single empty `input_json_delta`.
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        let script = SseScript::new()
            .event("message_start", &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": MODEL, "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}))
            .event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}}))
            .event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}))
            .event("content_block_stop", &json!({"type": "content_block_stop", "index": 0}))
            .event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 3}}))
            .event("message_stop", &json!({"type": "message_stop"}));
        mock.push(Reply::sse(script));
        let r = StreamAccumulator::collect(
            support::Anthropic::provider(&mock)
                .stream(&request("time?"))
                .await
                .unwrap(),
            MODEL,
        )
        .await
        .unwrap();
        assert_eq!(r.tool_calls[0].name, "get_time");
        // The non-streamed path gives `{}` for the same call; the streamed one must agree, or
        // OpenAI-format clients receive `"arguments": ""` and fail to parse it.
        assert_eq!(r.tool_calls[0].arguments, "{}");
    }

    #[tokio::test]
    async fn response_format_json_is_refused_before_any_request() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        let e = support::Anthropic::provider(&mock)
            .complete(&json_schema_request())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(mock.calls(), 0);
    }

    #[tokio::test]
    async fn list_models_sends_version_and_key() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(json_reply(Protocol::Anthropic, "models.json"));
        let models = support::Anthropic::provider(&mock)
            .list_models()
            .await
            .unwrap();
        assert_eq!(models.len(), 2);
        assert_eq!(models[0].id, "claude-sonnet-4-5-20250929");
        let req = mock.last_request().unwrap();
        assert_eq!(req.path, "/v1/models");
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(req.header("x-api-key"), Some(KEY));
    }

    #[tokio::test]
    async fn recorded_overloaded_error_body() {
        let mock = MockUpstream::start(Protocol::Anthropic).await.unwrap();
        mock.push(Reply::raw(
            529,
            "application/json",
            fixture(Protocol::Anthropic, "error_overloaded.json").unwrap(),
        ));
        let e = support::Anthropic::provider(&mock)
            .complete(&request("Hi"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
    }
}

mod gemini {
    use super::*;

    #[tokio::test]
    async fn recorded_generate_with_thoughts_and_cache() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(json_reply(Protocol::Gemini, "generate.json"));
        let r = support::Gemini::provider(&mock)
            .complete(&request("Explain AI"))
            .await
            .unwrap();
        assert_eq!(
            r.text(),
            "AI learns patterns from data to make predictions."
        );
        assert_eq!(r.id, "AbCdEfGhIjKlMnOp");
        assert_eq!(r.model, "gemini-2.5-flash");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 8,
                output_tokens: 22,
                cache_read_tokens: 3,
                cache_write_tokens: 0
            }
        );
    }

    #[tokio::test]
    async fn recorded_stream_with_crlf_framing() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(sse_reply(Protocol::Gemini, "stream_text.sse"));
        let r = StreamAccumulator::collect(
            support::Gemini::provider(&mock)
                .stream(&request("sky?"))
                .await
                .unwrap(),
            MODEL,
        )
        .await
        .unwrap();
        assert_eq!(r.text(), "The sky is blue, ünd clear.");
        assert_eq!(r.usage.output_tokens, 7);
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }

    #[tokio::test]
    async fn recorded_parallel_function_calls() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(sse_reply(Protocol::Gemini, "stream_function_call.sse"));
        mock.push(json_reply(Protocol::Gemini, "generate_function_call.json"));
        let provider = support::Gemini::provider(&mock);
        let streamed =
            StreamAccumulator::collect(provider.stream(&request("w")).await.unwrap(), MODEL)
                .await
                .unwrap();
        let whole = provider.complete(&request("w")).await.unwrap();
        for r in [&streamed, &whole] {
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!(r.tool_calls.len(), 2);
            assert_eq!(r.tool_calls[1].name, "get_time");
            assert_eq!(
                json_of(&r.tool_calls[1].arguments),
                json!({"tz": "Europe/Paris"})
            );
            assert_ne!(r.tool_calls[0].id, r.tool_calls[1].id);
        }
    }

    #[tokio::test]
    async fn response_format_json_schema_becomes_response_schema() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(support::Gemini::complete_reply(&Answer::text(
            "{\"answer\":\"42\"}",
        )));
        support::Gemini::provider(&mock)
            .complete(&json_schema_request())
            .await
            .unwrap();
        let body = mock.last_request().unwrap().json();
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert_eq!(
            body["generationConfig"]["responseSchema"],
            json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
        );
    }

    #[tokio::test]
    async fn recorded_invalid_key_is_auth_despite_status_400() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(Reply::raw(
            400,
            "application/json",
            fixture(Protocol::Gemini, "error_invalid_key.json").unwrap(),
        ));
        let e = support::Gemini::provider(&mock)
            .complete(&request("Hi"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
    }

    #[tokio::test]
    async fn recorded_models_keep_only_generating_and_embedding_models() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(json_reply(Protocol::Gemini, "models.json"));
        let models = support::Gemini::provider(&mock)
            .list_models()
            .await
            .unwrap();
        let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["gemini-2.5-flash", "text-embedding-004"]);
        assert_eq!(models[0].context_window, Some(1_048_576));
        let req = mock.last_request().unwrap();
        assert_eq!(req.path, "/v1beta/models");
        assert_eq!(req.header("x-goog-api-key"), Some(KEY));
    }

    #[tokio::test]
    async fn recorded_batch_embeddings() {
        let mock = MockUpstream::start(Protocol::Gemini).await.unwrap();
        mock.push(json_reply(Protocol::Gemini, "embeddings.json"));
        let r = support::Gemini::provider(&mock)
            .embed(&freeway_types::EmbeddingRequest {
                model: "text-embedding-004".into(),
                input: freeway_types::EmbeddingInput::Text(vec!["a".into(), "b".into()]),
                dimensions: Some(3),
                user: None,
            })
            .await
            .unwrap();
        assert_eq!(r.embeddings.len(), 2);
        assert_eq!(r.embeddings[1], vec![0.5, 0.25, -0.125]);
        let req = mock.last_request().unwrap();
        assert_eq!(
            req.path,
            "/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        assert_eq!(
            req.json()["requests"][1],
            json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3})
        );
    }
}
