// GET /v1/openapi.json: the API's contract, public (it holds no secret).

package api

import (
	"encoding/json"
	"net/http"

	spec "cafgate/api"
)

func (h *Handler) openAPI(*request) (*reply, *Problem) {
	return &reply{status: http.StatusOK, header: http.Header{}, body: json.RawMessage(spec.OpenAPI())}, nil
}
