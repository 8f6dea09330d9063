package runmerge_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/runmerge/runmerge"
)

func TestMergePatch(t *testing.T) {
	for _, tc := range []struct {
		name, doc, patch, want string
	}{
		{"empty patch copies",
			`{"name": "Keynote", "tags": ["a"]}`, `{}`, `{"name": "Keynote", "tags": ["a"]}`},
		{"replace a member",
			`{"name": "Keynote", "capacity": 10}`, `{"capacity": 20}`,
			`{"name": "Keynote", "capacity": 20}`},
		{"add a member",
			`{"name": "Keynote"}`, `{"status": "Upcoming"}`,
			`{"name": "Keynote", "status": "Upcoming"}`},
		{"null removes a member",
			`{"name": "Keynote", "location": "Hall A"}`, `{"location": null}`,
			`{"name": "Keynote"}`},
		{"null for an absent member changes nothing",
			`{"name": "Keynote"}`, `{"category": null}`, `{"name": "Keynote"}`},
		{"objects merge member by member",
			`{"address": {"city": "Berlin", "zipCode": "10115"}}`,
			`{"address": {"city": "Munich", "country": "DE"}}`,
			`{"address": {"city": "Munich", "zipCode": "10115", "country": "DE"}}`},
		{"null inside an object removes the inner member",
			`{"address": {"city": "Berlin", "zipCode": "10115"}}`, `{"address": {"zipCode": null}}`,
			`{"address": {"city": "Berlin"}}`},
		{"merging can leave an empty object",
			`{"address": {"city": "Berlin"}}`, `{"address": {"city": null}}`, `{"address": {}}`},
		{"arrays are replaced whole",
			`{"venue": [{"name": "A"}, {"name": "B"}]}`, `{"venue": [{"capacity": 3}]}`,
			`{"venue": [{"capacity": 3}]}`},
		{"nulls inside arrays stay",
			`{"tags": ["a"]}`, `{"tags": [null, "b", {"x": null}]}`,
			`{"tags": [null, "b", {"x": null}]}`},
		{"an empty array replaces",
			`{"tags": ["a"]}`, `{"tags": []}`, `{"tags": []}`},
		{"an object replaces a scalar, without its nulls",
			`{"address": "Berlin"}`, `{"address": {"city": "Berlin", "state": null}}`,
			`{"address": {"city": "Berlin"}}`},
		{"an object replaces an array",
			`{"x": [1, 2]}`, `{"x": {"a": 1}}`, `{"x": {"a": 1}}`},
		{"a scalar replaces an object",
			`{"address": {"city": "Berlin"}}`, `{"address": "Berlin"}`, `{"address": "Berlin"}`},
		{"an object into an absent member drops nested nulls",
			`{}`, `{"a": {"b": {"c": null, "d": 1}, "e": null}}`, `{"a": {"b": {"d": 1}}}`},
		{"false, zero and empty string are values",
			`{"a": 1, "b": true, "c": "x"}`, `{"a": 0, "b": false, "c": ""}`,
			`{"a": 0, "b": false, "c": ""}`},
		{"deep merge three levels down",
			`{"a": {"b": {"c": 1, "d": 2}, "e": 3}}`, `{"a": {"b": {"c": null, "f": 4}}}`,
			`{"a": {"b": {"d": 2, "f": 4}, "e": 3}}`},
		{"members of the patch that are not in the document are added deeply",
			`{"a": 1}`, `{"b": {"c": [1, {"d": null}]}}`, `{"a": 1, "b": {"c": [1, {"d": null}]}}`},
		{"every member removed",
			`{"a": 1, "b": {"c": 2}}`, `{"a": null, "b": null}`, `{}`},
	} {
		doc := decode(t, tc.doc)
		before := decode(t, tc.doc)
		patch := decode(t, tc.patch)
		got := runmerge.MergePatch(doc, patch)
		if want := decode(t, tc.want); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, marshal(t, got), tc.want)
		}
		if !reflect.DeepEqual(doc, before) {
			t.Errorf("%s: the document changed to %s", tc.name, marshal(t, doc))
		}
	}
}

func TestMergePatchNil(t *testing.T) {
	got := runmerge.MergePatch(nil, decode(t, `{"a": null, "b": {"c": null, "d": 1}}`))
	if want := decode(t, `{"b": {"d": 1}}`); !reflect.DeepEqual(got, want) {
		t.Errorf("got %s", marshal(t, got))
	}
	if got := runmerge.MergePatch(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("MergePatch(nil, nil) = %#v, want an empty map", got)
	}
}

// TestMergePatchSharesNothing changes the result and checks that neither the
// document nor the patch sees the change.
func TestMergePatchSharesNothing(t *testing.T) {
	doc := decode(t, `{"a": {"b": [1, {"c": 2}]}, "kept": {"x": [1]}}`)
	patch := decode(t, `{"a": {"n": 1}, "p": {"q": [{"r": 1}]}}`)
	docBefore, patchBefore := marshal(t, doc), marshal(t, patch)

	got := runmerge.MergePatch(doc, patch)
	got["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = "changed"
	got["kept"].(map[string]any)["x"].([]any)[0] = "changed"
	got["p"].(map[string]any)["q"].([]any)[0].(map[string]any)["r"] = "changed"

	if s := marshal(t, doc); s != docBefore {
		t.Errorf("document changed: %s", s)
	}
	if s := marshal(t, patch); s != patchBefore {
		t.Errorf("patch changed: %s", s)
	}
}

func marshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
