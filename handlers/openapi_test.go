package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
)

var echoPathParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIDocument loads GET /v1/openapi.json with kin-openapi, checks
// that it is a valid OpenAPI 3.1 document, and that it describes every route
// the server registers, the list parameters each collection accepts, and the
// fields of each collection as the definitions have them. (Every other test
// of this package that uses startRecAPI checks its answers against the same
// document.)
func TestOpenAPIDocument(t *testing.T) {
	a := startRecAPI(t)

	resp, err := http.Get(a.URL + "/v1/openapi.json") // no key: the description is public
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if v, _ := raw["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", raw["openapi"])
	}

	d := a.loadOpenAPI(t)
	if d.err != nil {
		t.Fatalf("kin-openapi refuses the document: %v", d.err)
	}
	if !d.doc.IsOpenAPI31OrLater() {
		t.Errorf("kin-openapi reads the document as OpenAPI %s", d.doc.OpenAPI)
	}

	routes := a.Server.EchoRoutes()
	if len(routes) < 5+7*6 {
		t.Fatalf("only %d routes: %v", len(routes), routes)
	}
	for _, r := range append(routes, keys(a.Server.Routes())...) {
		method, path, _ := strings.Cut(r, " ")
		oaPath := echoPathParam.ReplaceAllString(path, "{$1}")
		item := d.doc.Paths.Value(oaPath)
		if item == nil {
			t.Errorf("route %s: path %s is not in the document", r, oaPath)
			continue
		}
		op := item.GetOperation(method)
		switch {
		case op == nil:
			t.Errorf("route %s: the document has no %s operation on %s", r, method, oaPath)
		case op.Extensions["x-runmerge-undescribed"] != nil:
			t.Errorf("route %s has no description in handlers/openapi.go", r)
		case op.Summary == "" || op.Description == "" || op.Responses.Len() == 0:
			t.Errorf("route %s: operation without summary, description or responses", r)
		}
	}

	for _, c := range runmerge.Collections() {
		op := d.doc.Paths.Value("/v1/" + c.Name).Get
		if op == nil {
			t.Errorf("no GET /v1/%s", c.Name)
			continue
		}
		var documented []string
		for _, p := range op.Parameters {
			if p.Value.In == "query" {
				documented = append(documented, p.Value.Name)
			}
		}
		want := handlers.ListParameters(c)
		slices.Sort(documented)
		slices.Sort(want)
		if !slices.Equal(documented, want) {
			t.Errorf("GET /v1/%s documents parameters %v, the server takes %v", c.Name, documented, want)
		}

		name := strings.ToUpper(c.Kind[:1]) + c.Kind[1:]
		create := d.doc.Components.Schemas[name+"Create"]
		if create == nil {
			t.Errorf("no schema %sCreate", name)
			continue
		}
		var fields, required []string
		for _, f := range c.AllFields() {
			fields = append(fields, f.Name)
			if f.Required {
				required = append(required, f.Name)
			}
		}
		got := keys(create.Value.Properties)
		slices.Sort(fields)
		slices.Sort(got)
		if !slices.Equal(got, fields) {
			t.Errorf("%sCreate has properties %v, the collection fields %v", name, got, fields)
		}
		gotReq := slices.Clone(create.Value.Required)
		slices.Sort(gotReq)
		slices.Sort(required)
		if !slices.Equal(gotReq, required) {
			t.Errorf("%sCreate requires %v, the collection %v", name, gotReq, required)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
