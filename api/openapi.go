// Package api holds the HTTPS API's contract: the OpenAPI 3.1 document (openapi.json) that the gateway
// serves at /v1/openapi.json and its tests validate every answer against. The handler is
// cafgate/gateway/api; the document is described in words in docs/api.md.
package api

import _ "embed"

//go:embed openapi.json
var openapi []byte

// OpenAPI returns the OpenAPI document (a copy: callers may keep it).
func OpenAPI() []byte { return append([]byte(nil), openapi...) }
