"""OpenTelemetry traces end to end: `freeway serve` exports to an OTLP receiver in this test
(HTTP/protobuf, and gRPC), decoded with the official `opentelemetry-proto` messages. One trace
per request, joined to the client's `traceparent` and sent on to the upstream: the server
span, the route decision, each provider call, an agent's turn and tool runs, and exec."""

import http.server
import secrets
import threading
import time
from concurrent import futures

import anthropic
import grpc
import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import MASTER_KEY, start_freeway, write_config

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT
INTERNAL = trace_pb2.Span.SPAN_KIND_INTERNAL
ERROR = trace_pb2.Status.STATUS_CODE_ERROR
# SpanFlags: the parent's is-remote bit is known (0x100) and set (0x200).
REMOTE_PARENT = 0x300


class Spans:
    """What a receiver got: spans with their resource, in arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []
        self.requests = 0

    def add(self, request):
        with self.lock:
            self.requests += 1
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((resource, ss.scope.name, span))

    def of_trace(self, trace_id, until, timeout=15):
        """The spans of `trace_id` once `until(spans)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [s for _, _, s in self.spans if s.trace_id.hex() == trace_id]
            if until(found):
                return found
            if time.monotonic() > deadline:
                names = [s.name for s in found]
                raise AssertionError(f"trace {trace_id}: only {names}")
            time.sleep(0.05)


def attributes(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [x.string_value for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind)
    return out


def attrs(span):
    return attributes(span.attributes)


def named(spans, name):
    return [s for s in spans if s.name == name]


def one(spans, name):
    found = named(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


@pytest.fixture(scope="module")
def http_receiver():
    spans = Spans()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            assert self.path == "/v1/traces", self.path
            assert self.headers["content-type"] == "application/x-protobuf"
            spans.headers = dict(self.headers)
            spans.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()


def agent_and_exec_config(workspace):
    return f"""
[sandbox]
workspace = "{workspace}"
on_missing = "degrade"
default_timeout_ms = 20000

[[agents]]
name = "coder"
model = "openai/coding-agent"
max_steps = 10

[[routes]]
name = "flaky"
targets = ["openai/error-503", "claude/steady"]

[routing]
retries = 0
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("tracing-workspace")


@pytest.fixture(scope="module")
def traced(mock_upstream, http_receiver, tmp_path_factory, workspace):
    """A server exporting over OTLP/HTTP: the endpoint from the standard variable."""
    endpoint, spans = http_receiver
    config = write_config(
        tmp_path_factory.mktemp("tracing"), mock_upstream, agent_and_exec_config(workspace)
    )
    proc, base = start_freeway(
        config,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "freeway-e2e",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=abc%3D1",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    yield base, spans
    proc.terminate()
    proc.wait(timeout=10)


def new_traceparent(sampled=True):
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-{'01' if sampled else '00'}"


def upstream_traceparents(mock_upstream, model):
    return httpx.get(mock_upstream + "/_mock/traceparents").json().get(model, [])


def test_a_chat_request_is_one_trace_joined_to_the_clients(traced, mock_upstream):
    base, spans = traced
    trace_id, parent, traceparent = new_traceparent()
    client = openai.OpenAI(base_url=base + "/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"traceparent": traceparent},
    )
    assert raw.parse().choices[0].message.content == "You said: hello there"
    assert raw.headers["x-trace-id"] == trace_id
    assert raw.headers["traceresponse"].startswith(f"00-{trace_id}-")

    found = spans.of_trace(trace_id, lambda s: len(s) >= 3)
    server = one(found, "POST /v1/chat/completions")
    route = one(found, "route openai/gpt-4o-mini")
    call = one(found, "chat gpt-4o-mini")
    # The client's span is the server span's remote parent; then route, then the call.
    assert server.kind == SERVER
    assert server.parent_span_id.hex() == parent
    assert server.flags & REMOTE_PARENT == REMOTE_PARENT
    assert raw.headers["traceresponse"] == f"00-{trace_id}-{server.span_id.hex()}-01"
    assert route.parent_span_id == server.span_id and route.kind == INTERNAL
    assert call.parent_span_id == route.span_id and call.kind == CLIENT
    assert call.flags & REMOTE_PARENT == 0x100
    assert server.start_time_unix_nano <= call.start_time_unix_nano
    assert call.end_time_unix_nano <= server.end_time_unix_nano

    a = attrs(server)
    assert a["http.request.method"] == "POST"
    assert a["http.route"] == "/v1/chat/completions"
    assert a["http.response.status_code"] == 200
    assert a["freeway.request_id"] == raw.headers["x-request-id"]
    a = attrs(call)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.input_tokens"] == raw.parse().usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == raw.parse().usage.completion_tokens
    assert a["freeway.target"] == "openai/gpt-4o-mini"
    assert "error.type" not in a
    # No message content, and the secret header went to the collector only.
    assert "hello there" not in str(found)
    assert spans.headers["x-collector-key"] == "abc=1"

    # The upstream was called as a child of the call span.
    sent = upstream_traceparents(mock_upstream, "gpt-4o-mini")
    assert f"00-{trace_id}-{call.span_id.hex()}-01" in sent

    resource = next(r for r, _, s in spans.spans if s.trace_id.hex() == trace_id)
    assert resource["service.name"] == "freeway-e2e"

    # Health probes and scrapes are not traced.
    probe = httpx.get(base + "/healthz")
    assert "x-trace-id" not in probe.headers
    assert not any(s.name.startswith("GET /") for _, _, s in spans.spans)


def test_a_stream_span_ends_with_its_last_event(traced):
    base, spans = traced
    trace_id, _, traceparent = new_traceparent()
    client = anthropic.Anthropic(base_url=base, api_key=MASTER_KEY, max_retries=0)
    with client.messages.stream(
        model="claude/claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "stream this"}],
        extra_headers={"traceparent": traceparent},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream this"

    found = spans.of_trace(trace_id, lambda s: len(s) >= 3)
    server = one(found, "POST /v1/messages")
    call = one(found, "chat claude-sonnet-4-5")
    a = attrs(call)
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    # The call ends when its stream does, inside the server span that sent it.
    assert call.end_time_unix_nano <= server.end_time_unix_nano
    assert call.end_time_unix_nano > call.start_time_unix_nano


def test_embeddings_and_abandoned_streams_say_how_they_ended(traced):
    base, spans = traced
    oai = openai.OpenAI(base_url=base + "/v1", api_key=MASTER_KEY, max_retries=0)
    trace_id, _, traceparent = new_traceparent()
    r = oai.embeddings.create(
        model="openai/text-embedding-3-small", input=["one", "two"],
        extra_headers={"traceparent": traceparent},
    )
    found = spans.of_trace(trace_id, lambda s: len(s) >= 2)
    server = one(found, "POST /v1/embeddings")
    call = one(found, "embeddings text-embedding-3-small")
    assert call.parent_span_id == server.span_id
    a = attrs(call)
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens > 0
    assert "gen_ai.usage.output_tokens" not in a

    # A client that walks away mid-stream leaves a call marked cancelled, not a success.
    trace_id, _, traceparent = new_traceparent()
    body = {"model": "openai/hang-midstream", "stream": True,
            "messages": [{"role": "user", "content": "hang"}]}
    headers = {**AUTH, "traceparent": traceparent}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as r:
            next(r.iter_lines())
    call = one(spans.of_trace(trace_id, lambda s: len(s) >= 3), "chat hang-midstream")
    assert attrs(call)["error.type"] == "cancelled"
    assert call.status.code == trace_pb2.Status.STATUS_CODE_ERROR


def test_a_fallback_is_two_calls_under_one_route(traced):
    base, spans = traced
    r = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "flaky", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    trace_id = r.headers["x-trace-id"]
    found = spans.of_trace(trace_id, lambda s: len(s) >= 4)
    server = one(found, "POST /v1/chat/completions")
    # A trace freeway started has no parent.
    assert server.parent_span_id == b""
    route = one(found, "route flaky")
    assert attrs(route)["freeway.targets"] == "openai/error-503,claude/steady"
    failed, served = one(found, "chat error-503"), one(found, "chat steady")
    assert failed.parent_span_id == route.span_id == served.parent_span_id
    assert failed.status.code == ERROR
    assert attrs(failed)["error.type"] == "overloaded"
    assert served.status.code != ERROR
    assert failed.end_time_unix_nano <= served.start_time_unix_nano


def test_an_unsampled_trace_is_propagated_but_not_exported(traced, mock_upstream):
    base, spans = traced
    trace_id, _, traceparent = new_traceparent(sampled=False)
    r = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "openai/unsampled-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={**AUTH, "traceparent": traceparent},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-trace-id"] == trace_id
    assert r.headers["traceresponse"].endswith("-00")
    sent = upstream_traceparents(mock_upstream, "unsampled-model")
    assert len(sent) == 1 and sent[0].startswith(f"00-{trace_id}-") and sent[0].endswith("-00")
    # A sampled request after it is exported; the unsampled one never is.
    _, _, later = new_traceparent()
    httpx.post(
        base + "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={**AUTH, "traceparent": later},
    )
    spans.of_trace(later.split("-")[1], lambda s: len(s) >= 3)
    assert spans.of_trace(trace_id, lambda s: True) == []


def test_an_agent_turn_traces_its_model_calls_and_tools(traced, workspace):
    base, spans = traced
    repo = workspace / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text("from calc import add\n\nassert add(2, 3) == 5\nprint('ok')\n")
    trace_id, _, traceparent = new_traceparent()
    client = openai.OpenAI(base_url=base + "/v1", api_key=MASTER_KEY, max_retries=0)
    completion = client.chat.completions.create(
        model="agent:coder",
        messages=[{"role": "user", "content": "fix the failing test"}],
        extra_body={"working_directory": "repo"},
        extra_headers={"traceparent": traceparent},
        timeout=60,
    )
    assert completion.choices[0].message.content

    found = spans.of_trace(trace_id, lambda s: any(x.name.startswith("invoke_agent") for x in s))
    server = one(found, "POST /v1/chat/completions")
    turn = one(found, "invoke_agent coder")
    assert turn.parent_span_id == server.span_id
    a = attrs(turn)
    assert a["gen_ai.agent.name"] == "coder"
    assert a["gen_ai.conversation.id"].startswith("ses_")
    assert a["freeway.steps"] == 4
    assert a["freeway.stop_reason"] == "completed"
    tools = [s for s in found if s.name.startswith("execute_tool ")]
    assert {s.name for s in tools} >= {"execute_tool read_file", "execute_tool edit_file", "execute_tool bash"}
    for t in tools:
        assert t.parent_span_id == turn.span_id
        assert attrs(t)["gen_ai.tool.name"] == t.name.removeprefix("execute_tool ")
    routes = named(found, "route openai/coding-agent")
    assert len(routes) == 4
    assert all(r.parent_span_id == turn.span_id for r in routes)
    assert len(named(found, "chat coding-agent")) == 4


def test_exec_is_a_span_of_its_request(traced):
    base, spans = traced
    trace_id, _, traceparent = new_traceparent()
    r = httpx.post(
        base + "/v1/exec",
        json={"kind": "command", "command": ["sh", "-c", "exit 3"]},
        headers={**AUTH, "traceparent": traceparent},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    found = spans.of_trace(trace_id, lambda s: len(s) >= 2)
    server = one(found, "POST /v1/exec")
    run = one(found, "exec command")
    assert run.parent_span_id == server.span_id
    a = attrs(run)
    assert a["process.exit.code"] == 3
    assert a["freeway.exec.outcome"] == "failed"
    assert run.status.code == ERROR


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans):
        self.spans = spans

    def Export(self, request, context):
        self.spans.metadata = dict(context.invocation_metadata())
        self.spans.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_traces_go_over_grpc(mock_upstream, tmp_path):
    spans = Spans()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(spans), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    extra = f"""
[telemetry]
otlp_endpoint = "http://127.0.0.1:{port}"
otlp_protocol = "grpc"
service_name = "freeway-grpc"

[telemetry.otlp_headers]
x-tenant = "e2e"
"""
    config = write_config(tmp_path, mock_upstream, extra)
    proc, base = start_freeway(config, {"OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        trace_id, _, traceparent = new_traceparent()
        r = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "gemini/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]},
            headers={**AUTH, "traceparent": traceparent},
        )
        assert r.status_code == 200, r.text
        found = spans.of_trace(trace_id, lambda s: len(s) >= 3)
        call = one(found, "chat gemini-2.0-flash")
        assert attrs(call)["gen_ai.provider.name"] == "gcp.gemini"
        assert spans.metadata["x-tenant"] == "e2e"
        resource = next(r for r, _, s in spans.spans if s.trace_id.hex() == trace_id)
        assert resource["service.name"] == "freeway-grpc"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.stop(0)


def test_spans_queued_at_shutdown_are_flushed(mock_upstream, http_receiver, tmp_path):
    endpoint, spans = http_receiver
    extra = f"""
[telemetry]
otlp_endpoint = "{endpoint}"
"""
    config = write_config(tmp_path, mock_upstream, extra)
    # A delay far longer than the test: only the flush on shutdown can send the spans.
    log = open(tmp_path / "stderr.log", "w+")
    proc, base = start_freeway(
        config, {"OTEL_BSP_SCHEDULE_DELAY": "600000", "FREEWAY_LOG": "info"}, stderr=log
    )
    r = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
    )
    trace_id = r.headers["x-trace-id"]
    time.sleep(0.3)
    assert spans.of_trace(trace_id, lambda s: True, timeout=0) == []
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert len(spans.of_trace(trace_id, lambda s: len(s) >= 3, timeout=5)) == 3
    # The access log line names the trace.
    log.close()
    lines = (tmp_path / "stderr.log").read_text().splitlines()
    assert any("/v1/chat/completions" in l and f"trace_id={trace_id}" in l for l in lines), lines
