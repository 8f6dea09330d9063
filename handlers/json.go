package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// jsonSerializer is Echo's JSON serializer, writing compact JSON without
// HTML escaping.
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	return encodeJSON(c.Response(), i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error {
	return errors.New("handlers decode bodies with readObject")
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// readObject reads a JSON object body into its top-level members. A body of
// another content type is EUNSUPPORTEDMEDIA, one over the size limit
// ETOOLARGE, and anything but one JSON object EINVALIDJSON.
func readObject(c echo.Context) (map[string]json.RawMessage, error) {
	body, err := readJSONBody(c)
	if err != nil {
		return nil, err
	}
	return parseObject(body)
}

// readJSONBody reads a body that must be JSON: another content type is
// EUNSUPPORTEDMEDIA, a body over the size limit ETOOLARGE.
func readJSONBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || (mt != "application/json" && !(len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
		return nil, runmerge.Errorf(runmerge.EUNSUPPORTEDMEDIA, "the body must be application/json")
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, runmerge.Errorf(runmerge.ETOOLARGE, "the body is larger than %d bytes", mbe.Limit)
		}
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body could not be read")
	}
	return body, nil
}

// parseObject parses body as exactly one JSON object.
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is not a JSON object: %s", jsonErrorText(err))
	}
	if obj == nil {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body has data after its JSON object")
	}
	return obj, nil
}

// parseDocument parses body as exactly one JSON object, as parseObject
// does, into a document whose numbers are json.Number, so that they keep
// every digit the client sent.
func parseDocument(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is not a JSON object: %s", jsonErrorText(err))
	}
	if doc == nil {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, runmerge.Errorf(runmerge.EINVALIDJSON, "the body has data after its JSON object")
	}
	return doc, nil
}

// jsonErrorText describes a JSON syntax error without echoing the input.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return "expected an object, found " + te.Value
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "malformed JSON"
}

// fieldError builds a validation error for one field.
func fieldError(code, pointer, fieldCode, detail string) *runmerge.Error {
	msg := "the body breaks a rule; see errors"
	switch code {
	case runmerge.EUNKNOWNFIELD:
		msg = "the body names a field that does not exist"
	case runmerge.EREADONLYFIELD:
		msg = "the body names a field that only the server sets"
	}
	return &runmerge.Error{Code: code, Message: msg,
		Fields: []runmerge.FieldError{{Pointer: pointer, Code: fieldCode, Detail: detail}}}
}

// checkMembers refuses members that are read-only or unknown.
func checkMembers(obj map[string]json.RawMessage, writable, readOnly map[string]bool) error {
	for name := range obj {
		switch {
		case readOnly[name]:
			return fieldError(runmerge.EREADONLYFIELD, "/"+name, "read_only_field", "set by the server")
		case !writable[name]:
			return fieldError(runmerge.EUNKNOWNFIELD, "/"+name, "unknown_field", "no such field")
		}
	}
	return nil
}

// stringMember decodes an optional string member; ok reports presence.
func stringMember(obj map[string]json.RawMessage, name string) (v string, ok bool, err error) {
	raw, ok := obj[name]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, fieldError(runmerge.EINVALID, "/"+name, "invalid_type", "must be a string")
	}
	return v, true, nil
}
