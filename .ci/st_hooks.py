"""Schemathesis hooks for .ci/fuzz-contract: raw RFC 5322 messages go on the wire as text."""

import schemathesis

schemathesis.serializer.alias("message/rfc822", "text/plain")
