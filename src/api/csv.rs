//! CSV in (`text/csv` request bodies) and out (streamed `text/csv` responses).

use std::io::Write;

use poem::http::{header, StatusCode};
use poem::{Body, IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;
use tokio::sync::mpsc;

use super::body::{body_extractor, media_type, raw_bytes};
use super::envelope::One;
use super::error::ApiResult;
use super::security::Caller;
use crate::db::{run_blocking, Db};
use crate::domain::auth::{Principal, Scope};
use crate::domain::sheets::{
    self, Delimiter, ImportResult, Importer, OnDuplicate, ReadOptions, Run,
};
use crate::domain::DomainResult;
use crate::state::AppState;
use rusqlite::Connection;

const CSV: &str = "text/csv; charset=utf-8";

fn csv_schema() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
}

/// A `text/csv` request body: its bytes and the `charset` its `Content-Type` declared.
pub struct CsvBody {
    pub bytes: Vec<u8>,
    pub charset: Option<String>,
}

impl Payload for CsvBody {
    const CONTENT_TYPE: &'static str = "text/csv";

    /// The media types spreadsheet files arrive as: CSV under its two names, tab-separated
    /// text, plain text (Excel's "Unicode Text" is a `.txt`) and `application/vnd.ms-excel`,
    /// which browsers on Windows send for a `.csv`.
    fn check_content_type(content_type: &str) -> bool {
        matches!(
            media_type(content_type).as_str(),
            "text/csv"
                | "application/csv"
                | "text/tab-separated-values"
                | "text/plain"
                | "application/vnd.ms-excel"
        )
    }

    fn schema_ref() -> MetaSchemaRef {
        csv_schema()
    }
}

impl ParsePayload for CsvBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let charset = request.content_type().and_then(|ct| {
            ct.split(';').skip(1).find_map(|param| {
                let (name, value) = param.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("charset")
                    .then(|| value.trim().trim_matches('"').to_string())
            })
        });
        Ok(Self {
            bytes: raw_bytes(body).await?,
            charset,
        })
    }
}

body_extractor!(CsvBody);

/// A CSV file streamed to the client as it is produced.
pub struct CsvDownload {
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    filename: &'static str,
}

/// The writing end of a [`CsvDownload`]: a blocking `Write` that hands each chunk to the
/// response. Writing fails once the client has gone away, which stops the export.
pub struct CsvSink(mpsc::Sender<std::io::Result<Vec<u8>>>);

impl Write for CsvSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(buf.to_vec())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CsvSink {
    /// Ends the download with an error (the client sees a truncated transfer, never a short
    /// file that looks complete).
    fn fail(self, message: String) {
        let _ = self.0.blocking_send(Err(std::io::Error::other(message)));
    }
}

impl CsvDownload {
    /// A download named `filename`, written by `export` in one snapshot on a blocking thread
    /// as the client reads it. An export that fails midway ends the transfer with an error.
    pub fn stream<F>(db: &Db, filename: &'static str, export: F) -> Self
    where
        F: FnOnce(&Connection, &mut CsvSink) -> DomainResult<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let mut sink = CsvSink(tx);
            if let Err(e) = db.blocking().read(|c| export(c, &mut sink)) {
                tracing::warn!("{filename} export ended early: {e}");
                sink.fail(e.to_string());
            }
        });
        Self {
            chunks: rx,
            filename,
        }
    }
}

/// A response body fed, chunk by chunk, by a task holding the channel's other end.
pub struct ChunkStream(pub mpsc::Receiver<std::io::Result<Vec<u8>>>);

impl futures_util::Stream for ChunkStream {
    type Item = std::io::Result<Vec<u8>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl IntoResponse for CsvDownload {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::OK)
            .content_type(CSV)
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", self.filename),
            )
            .body(Body::from_bytes_stream(ChunkStream(self.chunks)))
    }
}

impl ApiResponse for CsvDownload {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A CSV file with a header row, streamed.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: CSV,
                    schema: csv_schema(),
                }],
                headers: vec![MetaHeader {
                    name: "Content-Disposition".into(),
                    description: Some(
                        "`attachment; filename=\"leads.csv\"`, named after what is exported".into(),
                    ),
                    required: false,
                    deprecated: false,
                    schema: String::schema_ref(),
                }],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// An import endpoint's work: reads `body` with `importer` for a caller holding `write`, on a
/// blocking thread, in one transaction (rolled back for a dry run).
pub async fn import<I: Importer + Send + 'static>(
    state: &AppState,
    caller: &Caller,
    body: CsvBody,
    delimiter: Option<Delimiter>,
    on_duplicate: Option<OnDuplicate>,
    importer: fn(Run) -> I,
) -> ApiResult<One<ImportResult>> {
    let p = caller.with(Scope::Write)?.clone();
    let options = ReadOptions {
        charset: body.charset,
        delimiter,
    };
    let result = import_as(
        state,
        p,
        body.bytes,
        options,
        on_duplicate.unwrap_or_default(),
        importer,
    )
    .await?;
    Ok(One::new(result))
}

/// Imports a file as `p` with `importer` (the API's import endpoints and the web app's upload):
/// on a blocking thread, in one transaction, rolled back for a dry run.
pub async fn import_as<I: Importer + Send + 'static>(
    state: &AppState,
    p: Principal,
    bytes: Vec<u8>,
    options: ReadOptions,
    on_duplicate: OnDuplicate,
    importer: fn(Run) -> I,
) -> DomainResult<ImportResult> {
    let import = importer(Run::new(p, state.clock.now_ms()));
    let db = state.db.clone();
    let rehearsal = crate::db::rehearsing();
    run_blocking(move || {
        sheets::import(
            &db,
            &import,
            &bytes,
            &options,
            on_duplicate,
            rehearsal,
            &mut |_, _| {},
        )
    })
    .await
}
