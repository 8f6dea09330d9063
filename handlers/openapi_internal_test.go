package handlers

import (
	"encoding/json"
	"testing"

	"github.com/runmerge/runmerge"
)

// TestOpenAPIMarksUndescribedRoutes checks that a route with no entry in the
// operations table still appears in the document, marked, so that the
// document test fails for it instead of the route going unlisted.
func TestOpenAPIMarksUndescribedRoutes(t *testing.T) {
	routes := map[string]runmerge.Action{
		"GET /healthz":           runmerge.ActionPublic,
		"GET /v1/widgets/:id":    runmerge.ActionRecordRead,
		"POST /v1/events":        runmerge.ActionRecordCreate,
		"GET /v1/openapi.json":   runmerge.ActionPublic,
		"DELETE /v1/tenants/:id": runmerge.ActionTenantDelete,
	}
	b, err := buildOpenAPI(routes)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != len(routes) {
		t.Errorf("%d paths for %d routes: %v", len(doc.Paths), len(routes), doc.Paths)
	}
	for path, want := range map[string]bool{
		"/v1/widgets/{id}": true, "/v1/events": false, "/healthz": false, "/v1/tenants/{id}": false,
	} {
		ops := doc.Paths[path]
		if len(ops) == 0 {
			t.Errorf("%s is not in the document", path)
			continue
		}
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			var o map[string]any
			json.Unmarshal(op, &o)
			if got := o[undescribedExtension] == true; got != want {
				t.Errorf("%s %s marked undescribed: %v, want %v", method, path, got, want)
			}
		}
	}
}
