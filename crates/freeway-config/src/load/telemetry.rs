//! `[telemetry]`: log format, the access log, and trace export over OTLP, with the standard
//! `OTEL_*` variables of the OpenTelemetry SDK specification honoured beside `FREEWAY_*`.

use std::time::Duration;

use freeway_providers::Secret;

use crate::raw::RawTelemetry;
use crate::runtime::{LogFormat, OtlpProtocol, TelemetryConfig, TraceExport};

use super::Cx;

/// Used as is: the full URL of the traces endpoint.
pub(super) const OTEL_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// A base URL: `/v1/traces` is appended for HTTP.
pub(super) const OTEL_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The specification's default `OTEL_BSP_SCHEDULE_DELAY`.
const DEFAULT_DELAY: Duration = Duration::from_secs(5);

impl Cx<'_> {
    pub(super) fn telemetry(&mut self, t: &RawTelemetry) -> TelemetryConfig {
        let log_format = match t.log_format.as_ref() {
            None => LogFormat::Pretty,
            Some(f) => match f.get_ref().as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => {
                    self.error(
                        f.span(),
                        "telemetry.log_format",
                        format!("`{other}` is not `pretty` or `json`"),
                    );
                    LogFormat::Pretty
                }
            },
        };
        let access_log_every = match t.access_log_sample.as_ref() {
            None => 1,
            Some(share) => {
                let v = *share.get_ref();
                if v > 0.0 && v <= 1.0 {
                    (1.0 / v).round() as u64
                } else {
                    self.error(
                        share.span(),
                        "telemetry.access_log_sample",
                        format!(
                            "{v} is not a share of requests in (0, 1]; 0.01 logs one in a hundred"
                        ),
                    );
                    1
                }
            }
        };
        TelemetryConfig {
            traces: self.traces(t),
            log_format,
            access_log: t.access_log.as_ref().is_none_or(|v| *v.get_ref()),
            access_log_every,
        }
    }

    fn traces(&mut self, t: &RawTelemetry) -> Option<TraceExport> {
        let protocol = match t.otlp_protocol.as_ref() {
            None => OtlpProtocol::HttpProtobuf,
            Some(p) => match p.get_ref().as_str() {
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                "grpc" => OtlpProtocol::Grpc,
                other => {
                    let why = if other == "http/json" {
                        "`http/json` is not supported: use `http/protobuf` or `grpc`".to_owned()
                    } else {
                        format!("`{other}` is not `http/protobuf` or `grpc`")
                    };
                    self.error(p.span(), "telemetry.otlp_protocol", why);
                    OtlpProtocol::HttpProtobuf
                }
            },
        };
        let sample = match t.trace_sample.as_ref() {
            Some(s) => {
                let v = *s.get_ref();
                if (0.0..=1.0).contains(&v) {
                    v
                } else {
                    self.error(
                        s.span(),
                        "telemetry.trace_sample",
                        format!("{v} is not a share of traces in [0, 1]; 0.1 keeps one in ten"),
                    );
                    1.0
                }
            }
            None => self.sampler_from_env().unwrap_or(1.0),
        };
        let delay = match self.var("OTEL_BSP_SCHEDULE_DELAY") {
            None => DEFAULT_DELAY,
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.env_error(
                        "OTEL_BSP_SCHEDULE_DELAY",
                        "telemetry",
                        format!("`{ms}` is not a delay in milliseconds"),
                    );
                    DEFAULT_DELAY
                }
            },
        };
        let mut headers = Vec::new();
        for (k, v) in &t.otlp_headers {
            if let Some(value) = self.resolve(v, &format!("telemetry.otlp_headers.{k}")) {
                headers.push((k.to_ascii_lowercase(), Secret::new(value)));
            }
        }
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(list) = self.var(var) {
                for (k, v) in self.header_list(var, &list) {
                    headers.retain(|(name, _)| *name != k);
                    headers.push((k, Secret::new(v)));
                }
            }
        }
        let service_name = t
            .service_name
            .as_ref()
            .map_or_else(|| "freeway".to_owned(), |s| s.get_ref().clone());

        let raw = t.otlp_endpoint.as_ref()?;
        let key = "telemetry.otlp_endpoint";
        let url = self.resolve(raw, key)?;
        let from_env = self.from_env.get(key).cloned();
        let Some(path_at) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .filter(|rest| !rest.is_empty() && !rest.starts_with('/'))
            .map(|rest| url.len() - rest.len() + rest.find('/').unwrap_or(rest.len()))
        else {
            self.error(
                raw.span(),
                key,
                format!("`{url}` is not an http:// or https:// URL of an OTLP collector"),
            );
            return None;
        };
        let (base, path) = url.split_at(path_at);
        let endpoint = match protocol {
            // gRPC names the method in the path itself: only the collector's address counts.
            OtlpProtocol::Grpc => base.to_owned(),
            // The specification: the generic variable is a base URL to which the signal's
            // path is appended; the per-signal one is used as is. A URL in the file with no
            // path gets the conventional one.
            OtlpProtocol::HttpProtobuf => match from_env.as_deref() {
                Some(OTEL_ENDPOINT) => format!("{}/v1/traces", url.trim_end_matches('/')),
                Some(OTEL_TRACES_ENDPOINT) => url.clone(),
                _ if path.trim_end_matches('/').is_empty() => format!("{base}/v1/traces"),
                _ => url.clone(),
            },
        };
        Some(TraceExport {
            endpoint,
            protocol,
            headers,
            service_name,
            sample,
            delay,
        })
    }

    /// `OTEL_TRACES_SAMPLER` (and its `_ARG`), as far as freeway's parent-based sampler goes.
    fn sampler_from_env(&mut self) -> Option<f64> {
        let sampler = self.var("OTEL_TRACES_SAMPLER")?;
        let ratio = match sampler.as_str() {
            "always_on" | "parentbased_always_on" => 1.0,
            "always_off" | "parentbased_always_off" => 0.0,
            "traceidratio" | "parentbased_traceidratio" => {
                let arg = self.var("OTEL_TRACES_SAMPLER_ARG");
                match arg.as_deref().map(|a| a.trim().parse::<f64>()) {
                    None => 1.0,
                    Some(Ok(v)) if (0.0..=1.0).contains(&v) => v,
                    Some(_) => {
                        self.env_error(
                            "OTEL_TRACES_SAMPLER_ARG",
                            "telemetry",
                            format!("`{}` is not a ratio in [0, 1]", arg.unwrap_or_default()),
                        );
                        return None;
                    }
                }
            }
            other => {
                self.env_error(
                    "OTEL_TRACES_SAMPLER",
                    "telemetry",
                    format!(
                        "`{other}` is not supported: use parentbased_traceidratio (with \
                         OTEL_TRACES_SAMPLER_ARG), parentbased_always_on or parentbased_always_off"
                    ),
                );
                return None;
            }
        };
        Some(ratio)
    }

    /// `key1=value1,key2=value2`, values percent-encoded (the W3C baggage format).
    fn header_list(&mut self, var: &str, list: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let decoded = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, _)| !k.is_empty())
                .and_then(|(k, v)| Some((k.to_ascii_lowercase(), percent_decode(v)?)));
            match decoded {
                Some(pair) => out.push(pair),
                None => {
                    let name = item.split('=').next().unwrap_or_default();
                    self.env_error(
                        var,
                        "telemetry",
                        format!("`{name}…` is not `name=value` (values percent-encoded)"),
                    );
                }
            }
        }
        out
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
