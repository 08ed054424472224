//! The web front's HTTPS listener (placeholder until the pages land).

use super::WebOptions;
use crate::keyservice::server::{Front, FrontContext, Listening, ServeError};

/// The web front, run by `cirrus serve --web-listen`.
pub struct WebFront {
    opts: WebOptions,
}

impl WebFront {
    pub fn new(opts: WebOptions) -> Self {
        WebFront { opts }
    }
}

impl Front for WebFront {
    fn name(&self) -> &'static str {
        "web"
    }

    fn start(self: Box<Self>, cx: FrontContext) -> Result<Listening, ServeError> {
        let cert = self
            .opts
            .cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        cx.serve_tls(self.opts.listen, cert, "web-tls", axum::Router::new())
    }
}
