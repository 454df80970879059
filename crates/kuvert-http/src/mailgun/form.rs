//! The bodies Mailgun's clients send: `multipart/form-data` (files, and the official
//! libraries' default) or `application/x-www-form-urlencoded`, read into one list of fields
//! in the order they came. Repeated names stay repeated (`to`, `o:tag`, `attachment`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use super::MgError;

/// At most this many fields in one request: a form of many tiny fields costs per field.
pub const MAX_FIELDS: usize = 2_000;

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: FieldValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    /// A part sent as a file (it had a file name).
    File {
        filename: String,
        content_type: Option<String>,
        content: Bytes,
    },
}

/// A request's form, in the order of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<Field>,
}

impl Form {
    /// The text values given under `name`.
    pub fn texts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter_map(move |f| match &f.value {
            FieldValue::Text(t) if f.name == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// The first text value of `name`: a query may repeat a key (mailgun.js sends a page's
    /// query again with the caller's), and the first one counts.
    pub fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.texts(name).next()
    }

    /// The one text value of `name`; given twice, the request is ambiguous and refused.
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, MgError> {
        let mut values = self.texts(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(MgError::bad_request(format!(
                "'{name}' parameter is given more than once"
            )));
        }
        Ok(first)
    }

    /// The files given under `name`, as (file name, content type, bytes).
    pub fn files<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a str, Option<&'a str>, &'a Bytes)> + 'a {
        self.fields.iter().filter_map(move |f| match &f.value {
            FieldValue::File {
                filename,
                content_type,
                content,
            } if f.name == name => Some((filename.as_str(), content_type.as_deref(), content)),
            _ => None,
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = MgError;

    async fn from_request(req: Request, state: &S) -> Result<Self, MgError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| MgError::bad_request(e.body_text()))?;
            let mut form = Form::default();
            while let Some(part) = multipart.next_field().await.map_err(|e| {
                MgError::new(
                    e.status(),
                    format!("the form cannot be read: {}", e.body_text()),
                )
            })? {
                push_limit(&form)?;
                let name = part.name().unwrap_or_default().to_owned();
                let filename = part.file_name().map(str::to_owned);
                let content_type = part.content_type().map(str::to_owned);
                let content = part.bytes().await.map_err(|e| {
                    MgError::new(
                        e.status(),
                        format!("the form cannot be read: {}", e.body_text()),
                    )
                })?;
                let value = match filename {
                    Some(filename) => FieldValue::File {
                        filename,
                        content_type,
                        content,
                    },
                    None => {
                        FieldValue::Text(String::from_utf8(content.to_vec()).map_err(|_| {
                            MgError::bad_request(format!("'{name}' parameter is not UTF-8"))
                        })?)
                    }
                };
                form.fields.push(Field { name, value });
            }
            Ok(form)
        } else if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|e| MgError::from(crate::ApiError::from(e)))?;
            urlencoded(&bytes)
        } else {
            Err(MgError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "expected multipart/form-data or application/x-www-form-urlencoded, got {ct:?}"
                ),
            ))
        }
    }
}

fn push_limit(form: &Form) -> Result<(), MgError> {
    if form.fields.len() >= MAX_FIELDS {
        return Err(MgError::bad_request(format!(
            "a request has at most {MAX_FIELDS} fields"
        )));
    }
    Ok(())
}

/// A urlencoded body (or query string) as a form of text fields.
pub fn urlencoded(bytes: &[u8]) -> Result<Form, MgError> {
    // Pair by pair: a body of many empty pairs stops at the limit, not after all are read.
    let mut form = Form::default();
    for (name, value) in form_urlencoded::parse(bytes) {
        push_limit(&form)?;
        form.fields.push(Field {
            name: name.into_owned(),
            value: FieldValue::Text(value.into_owned()),
        });
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urlencoded_body_keeps_repeated_fields_in_order() {
        let form = urlencoded(b"to=a%40x.example&o%3Atag=one&to=b@x.example&o:tag=two+three&x")
            .expect("a form");
        assert_eq!(
            form.texts("to").collect::<Vec<_>>(),
            ["a@x.example", "b@x.example"]
        );
        assert_eq!(
            form.texts("o:tag").collect::<Vec<_>>(),
            ["one", "two three"]
        );
        assert_eq!(form.one("x").expect("once"), Some(""));
        assert!(form.one("to").is_err(), "to is given twice");
        let many = "=&".repeat(MAX_FIELDS + 1);
        assert!(
            urlencoded(many.as_bytes()).is_err(),
            "more fields than a form has"
        );
    }
}
