//! Templates, shared by the CLI and the HTTP API: names and tags checked, each version
//! compiled (MJML rendered, every part checked as Handlebars) on the blocking threads before
//! it is stored, previews and test sends.

use kuvert_core::Mailbox;
use kuvert_core::id::AccountId;
use kuvert_core::submission::{Body, Parts, Submission, TrackingOptions};
use kuvert_store::{NewVersion, Store, Template};
use kuvert_submit::{AcceptError, Accepted, Acceptor, TemplateUse};
use kuvert_template::{Compiled, Rendered, Source};
use serde_json::{Map, Value};

use crate::AdminError;

/// A template's name or a version's tag: what Mailgun allows in both (lower-case letters,
/// digits, `-`, `_`, `.`), at most 100 characters; names are taken in lower case.
pub fn check_name(field: &'static str, name: &str) -> Result<String, AdminError> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 100
        || !lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err(AdminError::InvalidName {
            field,
            message: format!("{name:?}: a {field} is 1 to 100 letters, digits, '-', '_' or '.'"),
        });
    }
    Ok(lower)
}

/// A version as a request gives it.
pub struct VersionRequest {
    pub tag: Option<String>,
    pub comment: Option<String>,
    pub active: bool,
    pub source: Source,
}

fn stopped(e: tokio::task::JoinError) -> AdminError {
    tracing::error!(error = %e, "a template task failed");
    AdminError::Internal(format!("a template task stopped: {e}"))
}

async fn compile(source: Source) -> Result<Compiled, AdminError> {
    tokio::task::spawn_blocking(move || kuvert_template::compile(source))
        .await
        .map_err(stopped)?
        .map_err(AdminError::Template)
}

async fn new_version(v: VersionRequest) -> Result<NewVersion, AdminError> {
    let tag = v.tag.as_deref().map(|t| check_name("tag", t)).transpose()?;
    Ok(NewVersion {
        tag,
        comment: v.comment,
        active: v.active,
        compiled: compile(v.source).await?,
    })
}

pub async fn create_template(
    store: &Store,
    account: &AccountId,
    name: &str,
    description: Option<&str>,
    first: VersionRequest,
) -> Result<Template, AdminError> {
    let name = check_name("name", name)?;
    let first = new_version(first).await?;
    Ok(store
        .create_template(account, &name, description, first)
        .await?)
}

pub async fn add_version(
    store: &Store,
    account: &AccountId,
    name: &str,
    version: VersionRequest,
) -> Result<Template, AdminError> {
    let version = new_version(version).await?;
    Ok(store
        .add_template_version(account, &name.to_ascii_lowercase(), version)
        .await?)
}

/// A preview: the parts rendered with `variables`, and the variables the version names.
pub struct Preview {
    pub tag: String,
    pub rendered: Rendered,
    pub variables: Vec<String>,
}

pub async fn preview(
    acceptor: &Acceptor,
    account: &AccountId,
    using: &TemplateUse,
) -> Result<Preview, AdminError> {
    let (info, rendered) = acceptor
        .render_template(account, using, Map::new())
        .await
        .map_err(AdminError::Render)?;
    let version = acceptor
        .store()
        .template_version(account, &using.name, Some(&info.tag))
        .await?;
    let variables =
        tokio::task::spawn_blocking(move || version.compiled.prepare().map(|p| p.variables()))
            .await
            .map_err(stopped)?
            .map_err(AdminError::Template)?;
    Ok(Preview {
        tag: info.tag,
        rendered,
        variables,
    })
}

/// A test send: the version rendered with `variables` and sent to `to` (at most 10), tagged
/// `test`, with an unsubscribe link as a campaign's copies have. A missing variable is an
/// error here, as in every send.
pub async fn test_send(
    acceptor: &Acceptor,
    account: &AccountId,
    using: &TemplateUse,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Option<String>,
) -> Result<Accepted, AdminError> {
    if to.is_empty() || to.len() > MAX_TEST_RECIPIENTS {
        return Err(AdminError::Render(AcceptError::Invalid(
            kuvert_core::submission::SubmissionError::invalid(
                "to",
                format!("a test goes to 1 to {MAX_TEST_RECIPIENTS} addresses"),
            ),
        )));
    }
    let (_, rendered) = acceptor
        .render_template(account, using, Map::new())
        .await
        .map_err(AdminError::Render)?;
    let submission = submission(from, to, subject, rendered).map_err(AdminError::Render)?;
    let submission = Submission {
        tags: vec!["test".into()],
        tracking: TrackingOptions {
            unsubscribe: true,
            ..TrackingOptions::default()
        },
        ..submission
    };
    acceptor
        .accept(account, submission)
        .await
        .map_err(AdminError::Render)
}

/// How many addresses one test send may reach.
pub const MAX_TEST_RECIPIENTS: usize = 10;

/// A submission of rendered parts: the subject given, else the version's, with the
/// unsubscribe link when the parts link it. The rest is the caller's to set.
pub fn submission(
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Option<String>,
    rendered: Rendered,
) -> Result<Submission, AcceptError> {
    let unsubscribe = rendered.asks_for_unsubscribe();
    let subject = subject.or(rendered.subject).ok_or_else(|| {
        AcceptError::Invalid(kuvert_core::submission::SubmissionError::invalid(
            "subject",
            "a subject is needed: the template version has none",
        ))
    })?;
    Ok(Submission {
        from,
        to,
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: None,
        subject,
        body: Body::Parts(Parts {
            text: Some(rendered.text),
            html: Some(rendered.html),
            headers: Vec::new(),
            attachments: Vec::new(),
        }),
        tags: Vec::new(),
        metadata: Map::<String, Value>::new(),
        send_at: None,
        tracking: TrackingOptions {
            unsubscribe,
            ..TrackingOptions::default()
        },
        require_tls: false,
    })
}
