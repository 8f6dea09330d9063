package runmerge_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
)

// decodeBytes decodes data as the server does, reporting whether it is one
// JSON object.
func decodeBytes(data []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// seedObjects are the seed corpus of both fuzz tests: every valid and bad
// record of the table tests, and a few odd shapes.
func seedObjects() []string {
	seeds := []string{
		`{}`,
		`{"id": "x", "a/b": 1, "~": {"/": null}}`,
		`{"venue": [null, 1, "x", [], {}], "address": {"address": {"address": {}}}}`,
		`{"relationships": {"linkedEventIds": ["a", "a", 1, null, ""], "x": []}}`,
		`{"customFields": [{"fieldType": "number", "fieldValue": 1e999999}]}`,
		`{"capacity": -9223372036854775809, "price": 1e-999999, "fileSize": 0.0}`,
		`{"startDate": "2026-05-01T09:00:00Z", "endDate": "0000-01-01T00:00:00-23:59"}`,
		`{"timeZone": "Local", "email": "@", "url": "http://[::1]:80", "currency": "€€€"}`,
	}
	for _, name := range runmerge.CollectionNames {
		seeds = append(seeds, validRecords[name], minimalRecords[name])
		for _, bad := range badRecords[name] {
			if len(bad.patch) < 4096 {
				seeds = append(seeds, bad.patch)
			}
		}
	}
	for _, bad := range commonBad {
		if len(bad.patch) < 4096 {
			seeds = append(seeds, bad.patch)
		}
	}
	return seeds
}

// FuzzValidate feeds arbitrary JSON objects to CheckBody, ApplyDefaults,
// Validate and Index of every collection. None may panic, and every error
// must be well formed.
func FuzzValidate(f *testing.F) {
	for _, s := range seedObjects() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, ok := decodeBytes(data)
		if !ok {
			return
		}
		for _, c := range runmerge.Collections() {
			checkError(t, c.CheckBody(doc, "/records/7"), "/records/7",
				runmerge.EREADONLYFIELD, runmerge.EUNKNOWNFIELD)

			created := runmerge.MergePatch(nil, doc)
			c.ApplyDefaults(created)
			err := c.Validate(created, "")
			checkError(t, err, "", runmerge.EINVALID)
			if err == nil {
				c.NormalizeTimes(created)
				if err := c.Validate(created, ""); err != nil {
					t.Errorf("%s: valid until NormalizeTimes: %v", c.Name, err)
				}
			}
			checkError(t, c.Validate(doc, "/records/0"), "/records/0", runmerge.EINVALID)

			ix := c.Index(doc)
			if c.Name == runmerge.CollectionEvents && len(ix.EventIDs) > 0 {
				t.Errorf("events: EventIDs %v", ix.EventIDs)
			}
			if slices.Contains(ix.EventIDs, "") {
				t.Errorf("%s: an empty event id in %v", c.Name, ix.EventIDs)
			}
			for key, ids := range ix.Links {
				if runmerge.RelationshipCollection(key) == "" || len(ids) == 0 {
					t.Errorf("%s: links %q: %v", c.Name, key, ids)
				}
				if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
					t.Errorf("%s: repeated ids in %q: %v", c.Name, key, ids)
				}
			}
		}
	})
}

// checkError checks that err is nil or an *Error with one of codes, whose
// field errors all have a code, a detail and a pointer under prefix, in
// order.
func checkError(t *testing.T, err error, prefix string, codes ...string) {
	t.Helper()
	if err == nil {
		return
	}
	if !slices.Contains(codes, runmerge.ErrorCode(err)) {
		t.Fatalf("code %q, want one of %v: %v", runmerge.ErrorCode(err), codes, err)
	}
	fields := runmerge.ErrorFields(err)
	if len(fields) == 0 {
		t.Fatalf("%v: no field errors", err)
	}
	for _, fe := range fields {
		if !strings.HasPrefix(fe.Pointer, prefix+"/") || fe.Code == "" || fe.Detail == "" {
			t.Fatalf("bad field error %+v", fe)
		}
	}
	sorted := slices.Clone(fields)
	runmerge.SortFieldErrors(sorted)
	if !slices.Equal(sorted, fields) {
		t.Fatalf("field errors out of order: %v", fields)
	}
}

// FuzzMergePatch checks MergePatch on arbitrary objects: it must not change
// its inputs, must be idempotent, and must follow the patch member by member.
func FuzzMergePatch(f *testing.F) {
	seeds := seedObjects()
	for i, s := range seeds {
		f.Add([]byte(s), []byte(seeds[(i+1)%len(seeds)]))
	}
	f.Add([]byte(`{"a": {"b": 1}}`), []byte(`{"a": {"b": null, "c": {"d": null}}}`))
	f.Fuzz(func(t *testing.T, docData, patchData []byte) {
		doc, ok1 := decodeBytes(docData)
		patch, ok2 := decodeBytes(patchData)
		if !ok1 || !ok2 {
			return
		}
		docBefore, _ := decodeBytes(docData)
		patchBefore, _ := decodeBytes(patchData)

		once := runmerge.MergePatch(doc, patch)
		if !reflect.DeepEqual(doc, docBefore) || !reflect.DeepEqual(patch, patchBefore) {
			t.Fatal("MergePatch changed its input")
		}
		if twice := runmerge.MergePatch(once, patch); !reflect.DeepEqual(once, twice) {
			t.Fatalf("not idempotent:\nonce  %v\ntwice %v", once, twice)
		}
		for name, value := range patch {
			got, present := once[name]
			switch value.(type) {
			case nil:
				if present {
					t.Fatalf("%q: null left %v", name, got)
				}
			case map[string]any:
				if _, ok := got.(map[string]any); !ok {
					t.Fatalf("%q: object became %v", name, got)
				}
			default:
				if !reflect.DeepEqual(got, value) {
					t.Fatalf("%q: got %v, want %v", name, got, value)
				}
			}
		}
		for name, value := range doc {
			if _, patched := patch[name]; !patched && !reflect.DeepEqual(once[name], value) {
				t.Fatalf("%q: unpatched member changed", name)
			}
		}
	})
}
