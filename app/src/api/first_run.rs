//! Server functions for a new user's first steps: a sample project made in one click from LFV's own
//! getting-started images (which ship with Vigil), and what an LFV script needs to talk to this server.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A sample the console offers: its id, its title, and what it shows.
pub struct Sample {
    pub id: &'static str,
    pub title: &'static str,
    pub about: &'static str,
}

/// The samples, in the order the console offers them.
pub const SAMPLES: [Sample; 2] = [
    Sample {
        id: "cookies",
        title: "Cookies, with defect masks",
        about: "LFV's getting-started set: 32 training photos (12 cracked, each with a painted mask of the crack) \
                and 12 test photos. Trains a model that finds and outlines cracks.",
    },
    Sample {
        id: "circuitboard",
        title: "Circuit boards, normal or anomalous",
        about: "LFV's circuit board set: 30 training and 16 test images labelled normal or anomaly only. Trains a \
                classification model.",
    },
];

/// What a script needs to call this server's LFV API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The endpoint URL to give an AWS SDK (`endpoint_url`): the configured public URL, or the address this
    /// page was asked for.
    pub endpoint: String,
    /// The region the SDK must sign for.
    pub region: String,
    /// The signed-in user may create access keys (the Admin page).
    pub can_make_keys: bool,
}

impl Connection {
    /// A boto3 snippet with this server filled in.
    pub fn boto3_snippet(&self) -> String {
        format!(
            "import boto3\n\n\
             lfv = boto3.client(\n    \"lookoutvision\",\n    endpoint_url=\"{}\",\n    region_name=\"{}\",\n    \
             aws_access_key_id=\"YOUR_ACCESS_KEY_ID\",          # from the Admin page\n    \
             aws_secret_access_key=\"YOUR_SECRET_ACCESS_KEY\",\n)\n\
             print(lfv.list_projects()[\"Projects\"])\n",
            self.endpoint, self.region
        )
    }
}

#[cfg(feature = "ssr")]
pub use backend::{FirstRunBackend, SharedFirstRunBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use crate::api::BackendError;
    use std::sync::Arc;

    /// What the first-run server functions need from the server crate (provided as Leptos context).
    #[async_trait::async_trait]
    pub trait FirstRunBackend: Send + Sync + 'static {
        /// Creates a project from a sample (`SAMPLES[..].id`) and starts importing its datasets; returns the
        /// new project's name.
        async fn create_sample(&self, sample: &str) -> Result<String, BackendError>;
        /// The configured public URL, if any, and the region ARNs and signatures use.
        fn endpoint_and_region(&self) -> (Option<String>, String);
    }

    pub type SharedFirstRunBackend = Arc<dyn FirstRunBackend>;

    pub(crate) fn first_run_backend() -> Result<SharedFirstRunBackend, ServerFnError> {
        // The console's own checks (a signed-in session) run in `backend()`.
        super::super::backend::backend()?;
        use_context::<SharedFirstRunBackend>().ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

#[server]
pub async fn create_sample_project(sample: String) -> Result<String, ServerFnError> {
    Ok(backend::first_run_backend()?.create_sample(&sample).await?)
}

#[server]
pub async fn connect_info() -> Result<Connection, ServerFnError> {
    let backend = backend::first_run_backend()?;
    let (public, region) = backend.endpoint_and_region();
    let endpoint = public.unwrap_or_else(|| {
        // The address the browser used: what a script on the same network would use too.
        let parts = use_context::<http::request::Parts>();
        let host = parts
            .as_ref()
            .and_then(|p| p.headers.get(http::header::HOST))
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
            .unwrap_or("localhost:3000");
        format!("http://{host}")
    });
    let can_make_keys = use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<crate::api::auth::SessionUser>().map(|u| u.is_admin))
        .unwrap_or(false);
    Ok(Connection { endpoint, region, can_make_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_names_the_endpoint_and_region() {
        let c = Connection { endpoint: "http://vigil.plant:3000".into(), region: "eu-west-1".into(), can_make_keys: true };
        let s = c.boto3_snippet();
        assert!(s.contains("endpoint_url=\"http://vigil.plant:3000\""));
        assert!(s.contains("region_name=\"eu-west-1\""));
        assert!(SAMPLES.iter().all(|s| !s.id.is_empty()));
    }
}
